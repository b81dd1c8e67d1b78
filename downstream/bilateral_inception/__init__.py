"""Bilateral Inception (Gadde et al., ECCV 2016) on DeepLab trunks, with any superpixel provider.

Model: :mod:`.features` (superpixel position/colour features, grid assignment),
:mod:`.bilateral` (the BI module), :mod:`.model` (BI6 -> fc7 -> BI7 -> classifier head),
:mod:`.trunks` (DeepLabV3-MobileNetV2 port, torchvision DeepLabV3, DeepLab-LargeFOV).
Data and scores: :mod:`.datasets` (VOC 2012, SBD / train_aug, folders such as MSRC-21),
:mod:`.metrics` (IoU, paired bootstrap of mIoU, palette PNGs).
Training, one concern per module: :mod:`.preprocess` (trunk input geometry), :mod:`.caches`
(feature caches and their keys), :mod:`.loop` (checkpoints, resume, shuffles),
:mod:`.trunk_training`, :mod:`.bi_data`, :mod:`.bi_training`, :mod:`.evaluation`; and
:mod:`.pipeline`, the one trunk -> features -> superpixels -> head -> evaluation pipeline that
the command line (``python -m downstream.bilateral_inception {train,eval} ...``) and
``benchmarks.semseg_table`` share. Spec: ``../shared/specs/bilateral_inception.md``.

Any superpixel provider plugs in (a registered name, ``"name:key=value"``, a function
``f(image, n_segments) -> labels`` or a :class:`sin.Provider`)::

    from downstream.bilateral_inception import BIPipeline
    pipe = BIPipeline(cache_dir="cache/bi")
    labels = pipe.superpixels(my_function, [train_set], n_segments=600)
"""

from .bi_data import BIExample, collate_bi, histogram_cross_entropy, superpixel_class_histogram
from .bi_training import BITrainConfig, build_head, load_bi_checkpoint, train_bi
from .bilateral import BilateralInception, FeatureTransform, bilateral_kernels
from .caches import (
    CacheUnion,
    TensorCache,
    cache_backbone,
    cache_features,
    code_version,
    config_fingerprint,
    dataset_fingerprint,
    feature_cache_key,
)
from .evaluation import evaluate_baseline, evaluate_bi, predict_bi
from .features import SuperpixelFeatures, grid_assignment, superpixel_features
from .metrics import ConfusionMatrix, mean_iou, paired_bootstrap_miou
from .model import BilateralInceptionHead, BIOutput
from .pipeline import BIPipeline, TrunkHandle
from .preprocess import image_to_tensor, resize_for_trunk, trunk_input_size
from .trunk_training import TrunkTrainConfig, load_trunk_checkpoint, train_classifier, train_trunk
from .trunks import SegmentationTrunk, build_trunk

__all__ = [
    "BilateralInception",
    "FeatureTransform",
    "bilateral_kernels",
    "SuperpixelFeatures",
    "superpixel_features",
    "grid_assignment",
    "BilateralInceptionHead",
    "BIOutput",
    "SegmentationTrunk",
    "build_trunk",
    "trunk_input_size",
    "image_to_tensor",
    "resize_for_trunk",
    "config_fingerprint",
    "code_version",
    "dataset_fingerprint",
    "feature_cache_key",
    "TensorCache",
    "CacheUnion",
    "cache_backbone",
    "cache_features",
    "TrunkTrainConfig",
    "train_trunk",
    "train_classifier",
    "load_trunk_checkpoint",
    "BIExample",
    "collate_bi",
    "superpixel_class_histogram",
    "histogram_cross_entropy",
    "BITrainConfig",
    "build_head",
    "train_bi",
    "load_bi_checkpoint",
    "evaluate_baseline",
    "evaluate_bi",
    "predict_bi",
    "ConfusionMatrix",
    "mean_iou",
    "paired_bootstrap_miou",
    "BIPipeline",
    "TrunkHandle",
]

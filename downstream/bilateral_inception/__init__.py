"""Bilateral Inception (Gadde et al., ECCV 2016) on DeepLab trunks, with any superpixel provider.

Modules: :mod:`.features` (superpixel position/colour features, grid assignment),
:mod:`.bilateral` (the BI module), :mod:`.model` (BI6 -> fc7 -> BI7 -> classifier head),
:mod:`.trunks` (DeepLabV3-MobileNetV2 port, torchvision DeepLabV3, DeepLab-LargeFOV),
:mod:`.datasets` (VOC 2012, SBD / train_aug, folders such as MSRC-21), :mod:`.metrics` (IoU,
palette PNGs), :mod:`.train` (training / evaluation pipeline); command line:
``python -m downstream.bilateral_inception {train,eval} ...``. Spec:
``../shared/specs/bilateral_inception.md``.
"""

from .bilateral import BilateralInception, FeatureTransform, bilateral_kernels
from .features import SuperpixelFeatures, grid_assignment, superpixel_features
from .model import BilateralInceptionHead, BIOutput, BISegmenter
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
    "BISegmenter",
    "SegmentationTrunk",
    "build_trunk",
]

"""Every architecture of the book, by name (front-end modules, CNN families, modern ConvNets, transformers).

``list_models()`` names them; ``create(name, **overrides)`` builds one from its config, with
any config field overridden by keyword.  Each model lives in a module of its own with a config
dataclass whose defaults are commented and a builder registered here, so one parametrized test
(``tests/test_models.py``) checks the whole registry: output shape, finite output, gradients in
every parameter, determinism under a seed, and the exact parameter count against a published
number or a count derived in closed form from the architecture.
"""

from visarch.models import (  # noqa: F401  (importing a model module registers its models)
    alexnet,
    clip,
    convnext,
    cvt,
    deit,
    densenet,
    detr,
    dino,
    efficientnet,
    fcn,
    googlenet,
    inception_resnet,
    large_kernel,
    lenet,
    mobilenet,
    regnet,
    resnet,
    swin,
    timesformer,
    unet,
    vatt,
    vgg,
    video,
    vit,
    wide_resnet,
)
from visarch.models.registry import create, create_on_meta, get_config, list_models, register

__all__ = ["create", "create_on_meta", "get_config", "list_models", "register"]

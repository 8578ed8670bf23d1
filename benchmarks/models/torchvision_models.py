"""Factories for the size benchmark: torchvision models built the way users build them (weights allocated)."""

import torchvision

# 30 different classification models, for one `shapecheck check` call with 30 targets
THIRTY = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2",
    "densenet121", "densenet169", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x1_0",
    "squeezenet1_0", "mnasnet1_0", "efficientnet_b0", "efficientnet_b1", "efficientnet_v2_s", "regnet_y_400mf",
    "regnet_x_800mf", "convnext_tiny", "convnext_small", "alexnet", "vgg11", "vgg16_bn", "googlenet",
    "inception_v3", "vit_b_16", "swin_t", "maxvit_t",
]
NO_AUX = {"googlenet", "inception_v3"}


def _factory(name):
    def build():
        options = {"aux_logits": False, "init_weights": True} if name in NO_AUX else {}
        return torchvision.models.get_model(name, weights=None, num_classes=10, **options)
    build.__name__ = name
    return build


for _name in THIRTY:
    globals()[_name] = _factory(_name)


def vit_h_14():
    return torchvision.models.vit_h_14(weights=None, num_classes=10)

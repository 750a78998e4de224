"""Choice lists several rooms validate against, written once (the room that builds the thing
imports its list from here, so a flag's choices and the builder's check cannot drift)."""

STRATEGIES = ("default", "mirrored", "multi_worker")
BUILTIN_BACKBONES = ("vgg", "alexnet", "resnet20")
APPLICATION_BACKBONES = ("vgg16", "resnet50", "mobilenet_v2")
BACKBONES = BUILTIN_BACKBONES + APPLICATION_BACKBONES
EVAL_SPLITS = ("validation", "test")
LR_SCHEDULES = ("constant", "cosine")

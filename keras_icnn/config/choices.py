"""Choice lists several rooms validate against, written once (the room that builds the thing
imports its list from here, so a flag's choices and the builder's check cannot drift)."""

STRATEGIES = ("default", "mirrored", "multi_worker")
BUILTIN_BACKBONES = ("vgg", "alexnet", "resnet20")
APPLICATION_BACKBONES = ("vgg16", "resnet50", "mobilenet_v2")
BACKBONES = BUILTIN_BACKBONES + APPLICATION_BACKBONES
# The splits a command measures on, one list for every command (train: to see a model's fit).
EVAL_SPLITS = ("train", "validation", "test")
# Learning rate over a run, one list for every trainer: constant, cosine decay to 0, or step
# (x0.1 at 40%, 60% and 80% of the optimizer's steps); built by recipes.optim.decay.
LR_SCHEDULES = ("constant", "cosine", "step")

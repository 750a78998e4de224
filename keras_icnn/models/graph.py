"""The models users bring: nested sub-models and softmax heads, read from the graph.

A transfer-learning model is usually a ``keras.applications`` base nested in a
``Sequential`` or functional model: ``Sequential([Input, VGG16(include_top=False),
GlobalAveragePooling2D(), Dense(5)])``. Its conv layers are not layers of the
outer model, so ``model.get_layer("block5_conv3")`` fails. This module

* finds a layer at any depth: by its name when that name is unique in the whole
  tree, and always by its path (``"vgg16/block5_conv3"``): :func:`find_layer`;
* flattens such a model once into one functional graph that computes the same
  function with the *same layer objects* (so the same weight variables):
  :func:`flatten`; the layer names of the flat graph are the leaf layers' own
  names (a path or a sub-model's name resolves with :func:`flat_layer_name`);
* reads the pre-softmax logits of a classifier whose output applies a softmax
  (a final ``Softmax`` / ``Activation("softmax")`` layer, or a ``Dense`` / conv with
  ``activation="softmax"``) without modifying the user's model:
  :func:`logits_model`.

Example:
    >>> base = keras.applications.VGG16(include_top=False, weights=None,
    ...                                 input_shape=(64, 64, 3))
    >>> model = keras.Sequential([keras.Input((64, 64, 3)), base,
    ...                           keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5)])
    >>> find_layer(model, "vgg16/block5_conv3") is base.get_layer("block5_conv3")
    True
    >>> flat = flatten(model)          # one graph: flat.get_layer("block5_conv3") works
    >>> logits = heads.logits_model(model)   # its class scores (keras_icnn.models.heads)
"""


import keras



def _is_graph_model(layer):
    """A Functional or Sequential model (its graph can be inlined); a subclassed model with
    its own ``call`` is opaque and stays one layer."""
    if isinstance(layer, keras.Sequential):
        return True
    return isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth") and \
        getattr(layer, "_run_through_graph", None) is not None and _functional_of(layer) is not None


def _functional_of(model):
    """The functional graph behind ``model`` (a Sequential's own, when it has one)."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    try:
        model.inputs  # noqa: B018 - raises on a subclassed model without a graph
    except (AttributeError, ValueError):
        return None
    return model if getattr(model, "_nodes_by_depth", None) is not None else None


def _children(model):
    """The layers of ``model`` without its input layers."""
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def has_sub_models(model):
    """Whether any layer of ``model`` is itself a Functional/Sequential model."""
    return any(_is_graph_model(layer) for layer in _children(model))


def iter_layers(model, prefix=""):
    """``(path, layer)`` for every layer at every depth, outer layers first; a sub-model
    appears itself (``"vgg16"``) and then its layers (``"vgg16/block1_conv1"``)."""
    for layer in _children(model):
        path = f"{prefix}{layer.name}"
        yield path, layer
        if _is_graph_model(layer):
            yield from iter_layers(layer, path + "/")


def find_layer(model, name, caller="find_layer"):
    """The layer ``name`` of ``model`` at any depth.

    Args:
        model: a Keras model, possibly with nested Functional/Sequential sub-models.
        name: a path ``"outer/inner/layer"`` (always unambiguous) or a plain name, which
            must be unique in the whole tree.
        caller: the name used in error messages.

    Returns:
        The layer object.

    Raises:
        ValueError: naming the layers (with their paths) when nothing or several match.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"{caller}: the layer must be named by a non-empty string. "
                         f"Received: {name!r}")
    paths = list(iter_layers(model))
    if "/" in name:
        for path, layer in paths:
            if path == name:
                return layer
    else:
        matches = [(path, layer) for path, layer in paths if layer.name == name]
        if len(matches) == 1:
            return matches[0][1]
        if len(matches) > 1:
            raise ValueError(
                f"{caller}: the name {name!r} is used {len(matches)} times in model "
                f"{model.name!r} ({[p for p, _ in matches]}); name it by its path.")
    shown = [p for p, _ in paths]
    if len(shown) > 60:
        shown = shown[:30] + ["..."] + shown[-30:]
    raise ValueError(f"{caller}: no layer named {name!r} in model {model.name!r}. Layers (by "
                     f"path): {shown}")


def output_leaf(layer):
    """The innermost layer that produces a (sub-)model's output."""
    while _is_graph_model(layer):
        graph = _functional_of(layer)
        history = graph.outputs[0]._keras_history
        layer = history.operation
    return layer


def layer_output(model, name):
    """The output tensor of layer ``name`` in ``model``'s own graph.

    ``model.get_layer(name).output`` is the layer's *first* call's output; a layer that
    :func:`flatten` re-used (it is also called inside the user's nested model) has its
    flat-graph output on a later node, so this looks the node up in ``model``'s graph.
    """
    graph = _functional_of(model)
    if graph is None:
        return model.get_layer(name).output
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if node.operation is not None and node.operation.name == name and not node.is_input:
                outputs = node.output_tensors
                return outputs[0] if len(outputs) == 1 else outputs
    return model.get_layer(name).output


def consumers(model, layer):
    """The layers of ``model``'s own graph that read ``layer``'s output there (a layer shared
    with a user's nested model also feeds that model's graph; those nodes do not count)."""
    graph = _functional_of(model)
    if graph is None:
        return [node.operation for node in getattr(layer, "_outbound_nodes", [])]
    out = layer_output(model, layer.name)
    wanted = {id(t) for t in (out if isinstance(out, (list, tuple)) else [out])}
    found = []
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            if node.operation is not None and not node.is_input and \
                    any(id(t) in wanted for t in node.input_tensors):
                found.append(node.operation)
    return found


def flat_layer_name(model, name, caller="flat_layer_name"):
    """The name, in :func:`flatten` ``(model)``, of the layer ``name`` names in ``model``
    (a path, a unique name, or a sub-model, which stands for the layer making its output)."""
    return output_leaf(find_layer(model, name, caller)).name


def _inline(model, inputs):
    """Call ``model``'s layers on ``inputs`` (symbolic), sub-models inlined recursively."""
    graph = _functional_of(model)
    if graph is None:
        if isinstance(model, keras.Sequential):
            x = inputs
            for layer in _children(model):
                x = _inline(layer, x) if _is_graph_model(layer) else layer(x)
            return x
        raise ValueError(f"Model {model.name!r} has no graph to flatten (a subclassed model "
                         "with its own call): build it functionally, or pass the model "
                         "whose layers you want to name.")

    def operation_fn(op):
        if _is_graph_model(op):
            return lambda *args, **kwargs: _inline(op, args[0] if len(args) == 1 else args)
        return op

    return graph._run_through_graph(inputs, operation_fn=operation_fn)


def _check_built(model, caller):
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        kind = "Sequential model" if isinstance(model, keras.Sequential) else "model"
        raise ValueError(
            f"{caller} needs a built {kind} with a known input shape (start a Sequential with "
            f"keras.Input(shape) or call it on a batch first). Received: model {model.name!r}, "
            "not built")
    return inputs


def _input_name(tensor):
    name = tensor.name.split(":")[0]
    return "images" if not name or name.startswith("keras_tensor") else name


def flatten(model, caller="flatten"):
    """``model`` as one functional graph without sub-models, on the same layer objects.

    A functional model without sub-models is returned as it is (its class kept); a
    ``Sequential`` is rebuilt on its own layers; sub-models (Functional or Sequential,
    any depth) are inlined. The result computes the same function with the same weight
    variables: training it trains the user's model.

    Raises:
        TypeError / ValueError: not a model, not built, or two layers of the tree share a
        name (the flat graph needs unique names).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"{caller} needs a keras.Model. Received: model={model!r}")
    inputs = _check_built(model, caller)
    if not isinstance(model, keras.Sequential) and not has_sub_models(model):
        return model
    seen = {}
    for path, layer in iter_layers(model):
        if _is_graph_model(layer):
            continue
        if layer.name in seen:
            raise ValueError(
                f"{caller}: model {model.name!r} has two layers named {layer.name!r} "
                f"({seen[layer.name]!r} and {path!r}); a flat graph needs unique names. "
                "Rename one when you build the model.")
        seen[layer.name] = path
    fresh = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=_input_name(t))
             for t in inputs]
    outputs = _inline(model, fresh[0] if len(fresh) == 1 else fresh)
    return keras.Model(fresh[0] if len(fresh) == 1 else fresh, outputs, name=model.name)


def flat_copy(model, caller="flat_copy"):
    """A flat functional *copy* of ``model``: new layer objects (same names, same weight
    values), so every layer has one node. For a model the package only reads (a frozen
    performer), where sharing the user's layer objects buys nothing. ``model`` itself when
    it is already flat."""
    flat = flatten(model, caller)
    if flat is model:
        return model
    copy = keras.models.clone_model(flat)
    copy.set_weights(flat.get_weights())
    return copy


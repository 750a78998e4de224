"""The house's rules (../shared/DESIGN.md, issue 45) as checks on the package's source (AST only,
nothing imported):

1. no import circle between modules (function-level imports count: they hide circles);
2. no module imports another module's ``_private`` name, nor reads a ``_private`` attribute of an
   object that another module defines (``source._table``); Keras/TF internals the package must
   reach are listed in ``UPSTREAM_PRIVATE`` with the reason;
3. no module imports from a room above its own, in the order
   ops -> layers -> models -> explain / evaluation -> recipes -> export -> cli,
   with ``data``, ``metrics``, ``config``, ``reporting`` and ``validation`` beside them (they import only each
   other and ops; everyone may import them);
4. no module over 400 lines.

Each rule starts from today's exceptions as an allowlist (below) and the redesign empties them:
a new exception fails, and so does an allowlisted one that no longer occurs (remove it then).
``python tests/test_architecture.py`` prints today's exceptions in the allowlists' format.
"""
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "keras_icnn"
MAX_LINES = 400

# Room of each module, by path prefix (the longest prefix wins); ranks follow DESIGN.md's arrows.
BESIDE = -1
ROOMS = {
    "keras_icnn.templates": 0, "keras_icnn.imaging": 0, "keras_icnn.relu_gradients": 0,
    "keras_icnn.losses": 0, "keras_icnn.keras_compat": 0, "keras_icnn.ops": 0,
    "keras_icnn.compat": 0,
    "keras_icnn.layers": 1,
    "keras_icnn.models": 2, "keras_icnn.callbacks": 2, "keras_icnn.receptive_field": 2,
    "keras_icnn.distribute": 2,
    "keras_icnn.explain": 3, "keras_icnn.ascent": 3, "keras_icnn.adversarial": 3,
    "keras_icnn.evaluation": 3, "keras_icnn.trees": 3, "keras_icnn.graphs": 3,
    "keras_icnn.recipes": 4,
    "keras_icnn.report": 5, "keras_icnn.export": 5,
    "keras_icnn.cli": 6,
    "keras_icnn.data": BESIDE, "keras_icnn.metrics": BESIDE, "keras_icnn.config": BESIDE,
    "keras_icnn.validation": BESIDE, "keras_icnn._lazy": BESIDE,
    # Writing arrays and dicts to tables, JSON, figures and HTML needs no model: every room
    # may write its outputs (recipes their config.json, the CSG recipe its gate.png).
    "keras_icnn.reporting": BESIDE, "keras_icnn.viz": BESIDE,
}

# Private attributes of Keras / TensorFlow objects the package reads on purpose (no public API).
UPSTREAM_PRIVATE = {
    "_flatten_layers",  # Keras' own layer walk (nested models, wrappers), as Keras uses it
    "_inbound_nodes", "_keras_history", "_nodes_by_depth", "_run_through_graph",  # the graph
    "_trainable_variables",  # an optimizer's variable list; a layer's weights made trainable (guard)
    "_maybe_symbolic_build",  # compat.multi_worker's version-bounded Keras fix
    "_is_gcs_disabled",  # tensorflow-datasets: never reach the network
    "_exit",  # os._exit: the CSG recipe's simulated kill (a resume test's crash)
}

# ---- today's exceptions (issue 45 empties these) ------------------------------------------
ALLOWED_CYCLES = set()  # emptied by issue 45 (readers.read_cub moved to sources; format_value)
ALLOWED_PRIVATE = set()  # emptied by issue 45 (the names other modules use made public)
ALLOWED_UPWARD = set()  # emptied by issue 45
ALLOWED_LARGE = set()  # emptied by issue 45


# ---- the analysis ----------------------------------------------------------------------------

def modules():
    """{module name: path} of every .py file of the package."""
    out = {}
    base = os.path.join(ROOT, PACKAGE)
    for folder, _, files in os.walk(base):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


def room(module):
    best = max((p for p in ROOMS if module == p or module.startswith(p + ".")), key=len,
               default=None)
    return None if best is None else ROOMS[best]


def _is_package(module, mods):
    return mods.get(module, "").endswith("__init__.py")


def _reexports(mods, trees):
    """{(package, name): defining module} from each package ``__init__``'s imports."""
    out = {}
    for module, tree in trees.items():
        if not _is_package(module, mods):
            continue
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.startswith(PACKAGE):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    out[(module, alias.asname or alias.name)] = (
                        target if target in mods else node.module)
    return out


def imports(mods, trees):
    """Per module, its (target module, imported name or None, line) of the package."""
    reexports = _reexports(mods, trees)
    out = {}
    for module, tree in trees.items():
        rows = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(PACKAGE):
                        rows.append((alias.name, None, node.lineno))
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.startswith(PACKAGE):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if target in mods:
                        rows.append((target, None, node.lineno))
                    else:
                        source = reexports.get((node.module, alias.name), node.module)
                        rows.append((source, alias.name, node.lineno))
        out[module] = rows
    return out


def _module_aliases(tree, mods):
    """Local names bound to package modules in ``tree`` (``from keras_icnn.data import
    readers`` binds ``readers``)."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.startswith(PACKAGE):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if target in mods:
                    aliases[alias.asname or alias.name] = target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE) and alias.asname:
                    aliases[alias.asname] = alias.name
    return aliases


def _foreign_attributes(tree, module_aliases=()):
    """``_private`` attributes read on an object other than ``self``/``cls``/``super()`` that
    this module does not define itself (by ``def``, class attribute or assignment) and that are
    not :data:`UPSTREAM_PRIVATE`."""
    defined, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.Attribute):
            if isinstance(node.ctx, ast.Store):
                defined.add(node.attr)
                continue
            value = node.value
            if isinstance(value, ast.Name) and (value.id in ("self", "cls")
                                                or value.id in module_aliases):
                continue  # a module's privates: the import rule's
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "super":
                continue
            if node.attr.startswith("_") and not node.attr.startswith("__"):
                used.add(node.attr)
    return {a for a in used - defined - UPSTREAM_PRIVATE}


def violations():
    mods = modules()
    trees = {m: ast.parse(open(p, encoding="utf-8").read(), p) for m, p in mods.items()}
    edges = imports(mods, trees)
    graph = {m: {t for t, _, _ in rows if t in mods and t != m and not _is_package(t, mods)}
             for m, rows in edges.items() if not _is_package(m, mods)}
    private = set()
    for module, rows in edges.items():
        for target, name, _ in rows:
            if name and name.startswith("_") and not name.startswith("__") and target != module:
                private.add((module, target, name))
        aliases = _module_aliases(trees[module], mods)
        for node in ast.walk(trees[module]):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases and node.attr.startswith("_") \
                    and not node.attr.startswith("__") and aliases[node.value.id] != module:
                private.add((module, aliases[node.value.id], node.attr))
    for module, tree in trees.items():
        private |= {(module, "<object>", name)
                    for name in _foreign_attributes(tree, _module_aliases(tree, mods))}
    upward = set()
    for module, targets in graph.items():
        mine = room(module)
        for target in targets:
            theirs = room(target)
            if mine is None or theirs is None or theirs == BESIDE:
                continue
            if (mine == BESIDE and theirs > 0) or (mine != BESIDE and theirs > mine):
                upward.add((module, target))
    large = {m for m, p in mods.items() if sum(1 for _ in open(p, encoding="utf-8")) > MAX_LINES}
    return {"cycles": _cycles(graph), "private": private, "upward": upward, "large": large}


def _cycles(graph):
    """Every pair of modules on one import circle (Tarjan's strongly connected components)."""
    index, low, stack, on, pairs, counter = {}, {}, [], set(), set(), [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            component.sort()
            pairs.update((a, b) for i, a in enumerate(component) for b in component[i + 1:])

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return pairs


ALLOWED = {"cycles": ALLOWED_CYCLES, "private": ALLOWED_PRIVATE, "upward": ALLOWED_UPWARD,
           "large": ALLOWED_LARGE}
RULES = {"cycles": "import circle", "private": "another module's _private name",
         "upward": "an import from a room above (DESIGN.md's order)",
         "large": f"a module over {MAX_LINES} lines"}

_FOUND = None


def _found():
    global _FOUND
    if _FOUND is None:
        _FOUND = violations()
    return _FOUND


def _check(rule):
    found, allowed = _found()[rule], ALLOWED[rule]
    new, gone = sorted(found - allowed), sorted(allowed - found)
    message = []
    if new:
        message.append(f"new {RULES[rule]} (fix it; the allowlist only shrinks):")
        message += [f"  {row}" for row in new]
    if gone:
        message.append(f"no longer found, remove from ALLOWED_{rule.upper()} in "
                       "tests/test_architecture.py:")
        message += [f"  {row}" for row in gone]
    assert not message, "\n".join(message)


def test_no_import_circle():
    _check("cycles")


def test_no_private_name_of_another_module():
    _check("private")


def test_no_import_from_a_room_above():
    _check("upward")


def test_no_module_over_400_lines():
    _check("large")


def test_every_module_has_a_room():
    homeless = sorted(m for m in modules() if room(m) is None and m != PACKAGE)
    assert not homeless, f"modules outside every room of ROOMS: {homeless}"


def _is_shim(path):
    """An old import path kept for users: a few lines re-exporting a moved module."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return "sys.modules[__name__]" in text or len(text.splitlines()) < 12


def test_every_module_has_its_mirroring_test_module():
    """tests/<subpackage>/test_<module>.py for every module (shims and ``_private`` modules
    aside), so the next person finds a module's tests where its path says."""
    missing = []
    for module, path in sorted(modules().items()):
        base = os.path.basename(path)
        if base == "__init__.py" or base.startswith("_") or _is_shim(path):
            continue
        rel = os.path.relpath(path, os.path.join(ROOT, PACKAGE))
        test = os.path.join(ROOT, "tests", os.path.dirname(rel), "test_" + base)
        if not os.path.isfile(test):
            missing.append(os.path.relpath(test, ROOT))
    assert not missing, f"modules without their test module: {missing}"


def test_the_checks_catch_what_they_should(tmp_path, monkeypatch):
    """The analysis on a made-up package: a circle, a private import, an upward import and a
    long module are each found."""
    pkg = tmp_path / PACKAGE
    (pkg / "layers").mkdir(parents=True)
    (pkg / "data").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "layers" / "__init__.py").write_text("from keras_icnn.layers.a import A\n")
    (pkg / "layers" / "a.py").write_text("from keras_icnn.layers import b\nA = b._hidden\n")
    (pkg / "layers" / "b.py").write_text("def f():\n    from keras_icnn.layers import a\n"
                                         "_hidden = 1\n")
    (pkg / "data" / "__init__.py").write_text("")
    (pkg / "data" / "d.py").write_text("from keras_icnn.layers import A\n" + "x = 1\n" * 401)
    (pkg / "data" / "e.py").write_text("def f(source, model):\n    source._own = 1\n"
                                       "    return source._table, source._own, "
                                       "model._flatten_layers\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    found = violations()
    assert found["cycles"] == {("keras_icnn.layers.a", "keras_icnn.layers.b")}
    assert found["private"] == {("keras_icnn.layers.a", "keras_icnn.layers.b", "_hidden"),
                                ("keras_icnn.data.e", "<object>", "_table")}
    assert found["upward"] == {("keras_icnn.data.d", "keras_icnn.layers.a")}
    assert found["large"] == {"keras_icnn.data.d"}


if __name__ == "__main__":
    for rule, rows in violations().items():
        print(f"{rule}:")
        for row in sorted(rows):
            print(f"    {row!r},")

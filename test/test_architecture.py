"""The import rules of ARCHITECTURE.md, checked by parsing every module's imports (``ast``, nothing runs)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rtseg_ros"

# Bottom to top: a module may import from its own layer and the layers below it, never from above.
LAYERS = (
    ("common", "fileio", "topics", "__init__"),  # shared helpers and names: import nothing of rtseg_ros
    ("models",),
    ("data",),
    ("runtime",),
    ("eval",),
    ("train",),
    ("tools",),
    ("ros",),
    ("bench", "apps"),  # top: benchmarks of the running node, demo and replay orchestration
)
# Only these packages may import rclpy or ROS message/interface packages.
ROS_ALLOWED = ("ros", "bench", "apps")
ROS_MODULES = ("rclpy", "rcl_interfaces", "builtin_interfaces", "std_msgs", "sensor_msgs", "diagnostic_msgs",
               "launch", "launch_ros", "ament_index_python")


def layer_of(part: str) -> int:
    for index, members in enumerate(LAYERS):
        if part in members:
            return index
    raise AssertionError(f"rtseg_ros/{part} is in no layer of ARCHITECTURE.md: add it to LAYERS and the document")


def imports(path: Path):
    """(imported module, line) for every import in ``path``, relative imports resolved."""
    module = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = module if path.name == "__init__.py" else module[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                yield ".".join(base + ((node.module,) if node.module else ())), node.lineno
            else:
                yield node.module, node.lineno


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def top_part(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def test_no_module_imports_from_a_higher_layer():
    wrong = []
    for path in modules():
        own = layer_of(top_part(path))
        for name, line in imports(path):
            parts = name.split(".")
            if parts[0] != "rtseg_ros" or len(parts) < 2:
                continue
            if layer_of(parts[1]) > own:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    assert not wrong, "imports from a higher layer:\n" + "\n".join(wrong)


def test_only_ros_bench_and_apps_import_ros():
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
             for path in modules() if top_part(path) not in ROS_ALLOWED
             for name, line in imports(path) if name.split(".")[0] in ROS_MODULES]
    assert not wrong, "ROS imports outside ros/, bench/ and apps/:\n" + "\n".join(wrong)


def module_level_imports(path: Path) -> set[str]:
    """What importing ``path`` imports at once (not inside functions)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_benchmark_cli_loads_without_ros():
    # rtseg-bench --pipeline/--models run where ROS is not installed: its rclpy parts are imported only when
    # run (node_measure, stack) or run as their own processes (transport_probe).
    rclpy_parts = ("node_measure", "stack", "transport_probe")
    for path in (PACKAGE / "bench").glob("*.py"):
        if path.stem not in rclpy_parts:
            loaded = module_level_imports(path)
            assert not {n for n in loaded if n.split(".")[0] in ROS_MODULES}, path
            assert not {f"rtseg_ros.bench.{part}" for part in rclpy_parts} & set(loaded), path


# ------------------------------------------------------------------------------ one home per fact (rule 3)
def _facts() -> tuple[dict[str, str], dict[frozenset, str]]:
    """(topic name → its home module, choice set → its home module), read from the homes themselves."""
    from rtseg_ros import topics
    from rtseg_ros.data.labels import DATASET_NAMES
    from rtseg_ros.runtime import choices

    names = {value: "rtseg_ros/topics.py" for key, value in vars(topics).items() if key.endswith("_TOPIC")}
    home = "rtseg_ros/runtime/choices.py"
    sets = {frozenset(DATASET_NAMES): "rtseg_ros/data/labels.py"}
    for values in (choices.BACKENDS, choices.PRECISIONS, choices.INT8_BACKENDS, choices.OUTPUTS, choices.DEVICES,
                   choices.OUTPUT_RESOLUTIONS, choices.UPSAMPLES, *choices.BACKEND_PRECISIONS.values()):
        sets[frozenset(values)] = home
    return names, sets


def _string_lists(tree: ast.AST):
    """(line, set of strings) for every tuple, list or set literal made only of strings (two or more), and
    for every call's positional arguments when they are all strings (``choice("a", "b")``)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = node.elts
        elif isinstance(node, ast.Call):
            items = node.args
        else:
            continue
        if len(items) > 1 and all(isinstance(i, ast.Constant) and isinstance(i.value, str) for i in items):
            yield node.lineno, frozenset(i.value for i in items)


def test_topic_names_and_choice_lists_are_typed_out_once():
    # A topic name or a choice list (datasets, outputs, output_resolution, upsample, backends, precisions,
    # which backend runs which precision, devices) written again outside its home drifts from it: import it instead.
    names, sets = _facts()
    wrong = []
    for path in modules():
        where = str(path.relative_to(PACKAGE.parent))
        tree = ast.parse(path.read_text(), where)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and names.get(node.value, where) != where:
                wrong.append(f"{where}:{node.lineno} {node.value!r} (defined in {names[node.value]})")
        for line, values in _string_lists(tree):
            if sets.get(values, where) != where:
                wrong.append(f"{where}:{line} {sorted(values)} (defined in {sets[values]})")
    assert not wrong, "typed out again, import it from its home:\n" + "\n".join(wrong)

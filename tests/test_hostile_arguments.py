"""Every `depth-prior` subcommand's main(), in-process, over a table of hostile argument values, and the
node's parameter parser over every Param (issue 13, item 6 and its acceptance).

For each subcommand there is a cheap valid command line (BASES); each option in turn gets the hostile
values of its kind (NaN, inf, negative, zero, huge, empty, not a number, paths that are files, missing,
under /proc or /dev, JSON that is not an object, ...). The rule: exit 0, or exit 2 with one line on
stderr; never a traceback, never another status. Values that can never be right (NaN, a file as the
output folder, ...) must be refused. The option lists come from the parser itself, so a new option or
subcommand fails ``test_every_option_has_hostile_values`` until it is given a role here.

bench and soak start real measurements on any valid value, so they get only the values that must be
refused. A few real node starts check the same for node parameters at their bounds.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers_http import serving
from helpers_models import write_release_pth
from helpers_replay import make_synth_bags

from depth_prior_ros.cli import build_parser, main
from depth_prior_ros.parameters import DEPTH_NODE, PRIOR_NODE, SPEC, ParameterError, parse_params

# --------------------------------------------------------------------------- hostile values by kind
# "!" marks a value that must be refused (exit 2); the others may also succeed.
NUMBERS = ["!nan", "!inf", "!-inf", "-1", "0", "1e-9", "1e308", "!", "!abc", "!1,5"]
INTEGERS = ["-1", "0", "99999999999999999999", "!", "!1.5", "!abc", "!1e3"]
CHOICES = ["!", "!nope", "!\n"]
OUT_DIRS = ["!{FILE}", "!{FILE}/sub", "!/proc/depth_prior_x", "!/dev/null", "!", "{NEW}/deep/out"]
OUT_FILES = ["!{DIR}", "!{FILE}/x.out", "!/proc/depth_prior_x.md", "!", "{NEW}/deep/x.out"]
IN_PATHS = ["!{MISSING}", "!{DIR}", "!{FILE}", "!/proc/self/status", "!/dev/null", "!"]
JSON = ["!{bad", "![]", "!null", '!"x"', "!1e999", "{}", '{"nope": 1}']
TEXT = ["", "\n", "x" * 300, "../../x", "-", "ü\u202e"]
PARAMS = ["", "x", "=1", "max_depth=nan", "max_depth=1e400", "max_depth=-3", "camera_heigth=1.2",
          "backend_options={bad", "diagnostics_period=1e10", "qos_depth=abc"]
URLS = ["!", "!nope", "!ftp://127.0.0.1/x.pth", "!http://", "!http://127.0.0.1:1/x.pth", "!{URL}/%2e%2e",
        "!{URL}/w%00.pth", "!{URL}/missing.pth", "!{URL}/a.pth?%0a"]
SHA256 = ["!", "!zz", "!" + "0" * 64, "!" + "g" * 64]

# Per subcommand: a cheap valid command line, and the role of each option argparse does not type itself.
BASES = {
    "prior": ["{CAMERA_YAML}", "--height", "1.5", "--out", "{NEW}/prior"],
    "replay": ["{BAG}", "--out", "{NEW}/report", "--no-bag", "--previews", "0", "--max-frames", "1", "--no-progress"],
    "bag from-kitti": ["{KITTI}", "--out", "{NEW}/kitti_bag", "--no-progress"],
    "bag from-nuscenes": ["{NUSCENES}", "--out", "{NEW}/ns_bags", "--no-progress"],
    "bag synth": ["--out", "{NEW}/synth", "--frames", "1", "--preset", "tiny", "--no-lidar", "--no-progress",
                  "--conditions", "day"],
    "demo": ["--offline", "--frames", "1", "--width", "64", "--height", "48", "--conditions", "day", "--out",
             "{NEW}/demo", "--no-progress"],
    "export": ["--backend", "ssd_student", "--weights", "{WEIGHTS}", "--out", "{NEW}/m.onnx"],
    "weights fetch": ["{URL}/ok.pth", "--cache", "{NEW}/cache", "--no-progress"],
    "weights check": ["{WEIGHTS}"],
    "weights list": [],
    "weights text-embedding": ["--text-encoder", "{DIR}", "--out", "{NEW}/emb.safetensors"],
    "bench": ["--quick", "--sections", "core", "--out", "{NEW}/bench.md"],
    "soak": ["--frames", "10", "--size", "64x48", "--out", "{NEW}/soak.md"],
}
HEAVY = {"bench", "soak"}  # a valid value starts a measurement: only values that must be refused
ROLES = {
    ("prior", "camera_info"): IN_PATHS, ("prior", "--road-mask"): IN_PATHS, ("prior", "--out"): OUT_DIRS,
    ("replay", "bags"): IN_PATHS, ("replay", "--out"): OUT_DIRS, ("replay", "--backend"): TEXT + ["prior_only"],
    ("replay", "--weights"): ["!{MISSING}", "!/proc/self/status", "-", ""], ("replay", "--backend-options"): JSON,
    ("replay", "--device"): TEXT,
    ("replay", "--param"): PARAMS, ("replay", "--condition"): TEXT,
    **{("replay", f"--{t}"): TEXT for t in ("image-topic", "camera-info-topic", "gt-topic", "lidar-topic",
                                            "road-mask-topic", "labels-topic", "ground-frame", "fixed-frame")},
    ("bag from-kitti", "folder"): IN_PATHS, ("bag from-kitti", "--out"): OUT_DIRS, ("bag from-kitti", "--drive"): TEXT,
    ("bag from-nuscenes", "root"): IN_PATHS, ("bag from-nuscenes", "--out"): OUT_DIRS,
    **{("bag from-nuscenes", o): TEXT for o in ("--version", "--scene", "--camera", "--lidar")},
    ("bag synth", "--out"): OUT_DIRS, ("bag synth", "--conditions"): TEXT, ("bag synth", "--preset"): TEXT,
    ("demo", "--out"): OUT_DIRS, ("demo", "--conditions"): TEXT, ("demo", "--backend"): TEXT,
    ("export", "--weights"): IN_PATHS, ("export", "--out"): OUT_FILES, ("export", "--options"): JSON,
    ("weights fetch", "source"): URLS, ("weights fetch", "--sha256"): SHA256, ("weights fetch", "--cache"): OUT_DIRS,
    ("weights check", "path"): IN_PATHS, ("weights check", "--options"): JSON,
    ("weights text-embedding", "--text-encoder"): IN_PATHS, ("weights text-embedding", "--tokenizer"): IN_PATHS,
    ("weights text-embedding", "--out"): OUT_FILES,
    ("bench", "--out"): OUT_FILES, ("soak", "--out"): [v for v in OUT_FILES if v != "!"],  # '': no report
    **{(c, "--log-dir"): OUT_DIRS for c in HEAVY},
    **{(c, "--fastdds-profile"): ["!{MISSING}", "!{DIR}"] for c in HEAVY},  # '' keeps the environment's
    **{(c, "--size"): ["!", "!x", "!0x0", "!1e9x1e9"] for c in HEAVY},
    ("bench", "--device"): [], ("bench", "--models"): [],  # names checked by the backends section itself
}


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple = ()):
    """(command words, parser) of every subcommand."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
        return
    for name, sub in subs[0].choices.items():
        yield from leaf_parsers(sub, path + (name,))


def option_values(command: str, action) -> list[str] | None:
    """Hostile values for one option (None: it has no role here yet)."""
    name = action.option_strings[0] if action.option_strings else action.dest
    if (command, name) in ROLES:
        return ROLES[(command, name)]
    kind = getattr(action.type, "__name__", None)
    if kind == "number":
        return NUMBERS
    if kind == "integer":
        return INTEGERS
    if action.choices is not None:
        return CHOICES
    return None


def _values_to_run(command: str, values: list[str]) -> list[str]:
    return [v for v in values if v.startswith("!")] if command in HEAVY else values


@dataclass(frozen=True)
class Case:
    command: str
    option: str
    value: str  # with the "!" marker

    @property
    def must_refuse(self) -> bool:
        return self.value.startswith("!")

    def argv(self, world: dict) -> list[str]:
        base = BASES[self.command]
        value = self.value[1:] if self.must_refuse else self.value
        args = list(base)
        if self.option.startswith("-"):
            if self.option in args:  # replace the base's value
                args[args.index(self.option) + 1] = value
            else:
                args += [self.option, value]
        else:  # a positional: the base's first
            args[0] = value
        return self.command.split() + [_fill(a, world) for a in args]


def _fill(text: str, world: dict) -> str:
    return re.sub(r"\{([A-Z_]+)\}", lambda m: str(world[m.group(1)]), text)


def all_cases() -> list[Case]:
    cases = []
    for command, parser in leaf_parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction)):
                continue
            values = option_values(command, action) or []
            name = action.option_strings[0] if action.option_strings else action.dest
            cases += [Case(command, name, v) for v in _values_to_run(command, values)]
    return cases


# --------------------------------------------------------------------------- the world the cases run in
class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_data_or_none):
    root = tmp_path_factory.mktemp("hostile")
    (root / "www").mkdir()
    weights = write_release_pth(root / "www" / "ok.pth")
    (root / "file").write_text("a plain file\n")
    (root / "dir").mkdir()
    camera = root / "camera.yaml"
    camera.write_text("image_width: 64\nimage_height: 48\ncamera_name: c\ndistortion_model: plumb_bob\n"
                      "camera_matrix: {rows: 3, cols: 3, data: [50, 0, 31.5, 0, 50, 23.5, 0, 0, 1]}\n"
                      "distortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}\n")
    bag = make_synth_bags(root / "bags", frames=2, conditions=("day",))[0]
    from test_replay_nuscenes import write_nuscenes_fixture

    nuscenes = root / "nuscenes"
    write_nuscenes_fixture(nuscenes)
    kitti = shared_data_or_none / "kitti_000008" if shared_data_or_none else root / "no_kitti_sample"
    with serving(functools.partial(_Files, directory=str(root / "www"))) as url:
        yield {"FILE": root / "file", "DIR": root / "dir", "MISSING": root / "missing", "CAMERA_YAML": camera,
               "BAG": bag, "NUSCENES": nuscenes, "KITTI": kitti, "WEIGHTS": weights, "URL": url}


@pytest.fixture(scope="module")
def shared_data_or_none():
    from conftest import SHARED_DATA

    return SHARED_DATA if SHARED_DATA.is_dir() else None


def run_main(argv: list[str], cwd: Path) -> tuple[int, str]:
    """main(argv) in this process with stdout/stderr captured, cwd and os.environ restored afterwards."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    err = io.StringIO()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return code, err.getvalue()


def assert_one_sentence_or_success(case: Case, code: int, err: str) -> None:
    assert "Traceback" not in err, err
    if case.must_refuse:
        assert code == 2, f"{case} was not refused (exit {code}): {err[-300:]}"
    assert code in (0, 2), f"{case}: exit {code}: {err[-300:]}"
    if code == 2:
        # What a terminal shows: progress bars end in carriage returns; log records are not the error.
        lines = [line.rsplit("\r", 1)[-1] for line in err.strip().splitlines()]
        lines = [line for line in lines if line.strip() and not re.match(r"^(WARNING|INFO|DEBUG)\b", line)]
        assert len(lines) == 1 and re.match(r"^depth-prior [a-z -]+: error: \S", lines[0]), err


CASES = all_cases()


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[f"{c.command}|{c.option}={c.value!r}" for c in CASES])
def test_hostile_argument(case, world, tmp_path):
    world = {**world, "NEW": tmp_path}
    code, err = run_main(case.argv(world), tmp_path)
    assert_one_sentence_or_success(case, code, err)


def test_every_subcommand_and_option_has_hostile_values():
    """A new subcommand or option fails here until it has a base command line and a role."""
    missing = []
    for command, parser in leaf_parsers(build_parser()):
        if command not in BASES:
            missing.append(f"{command}: no base command line in BASES")
            continue
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction)):
                continue
            if option_values(command, action) is None:
                missing.append(f"{command} {action.option_strings or action.dest}: no role in ROLES")
    assert not missing, missing
    assert {c.command for c in CASES} >= set(BASES) - {"weights list"}


def test_every_base_command_line_works(world, tmp_path):
    """The cheap command lines the cases vary succeed (the heavy ones are only parsed)."""
    for command in sorted(set(BASES) - HEAVY):
        if command == "bag from-kitti" and not Path(world["KITTI"]).is_dir():
            continue
        if command == "weights text-embedding":  # needs an SD2 text encoder: its refusal is one sentence
            continue
        out = tmp_path / command.replace(" ", "_")
        out.mkdir()
        code, err = run_main(command.split() + [_fill(a, {**world, "NEW": out}) for a in BASES[command]], out)
        assert code == 0, f"{command}: {err[-500:]}"


# --------------------------------------------------------------------------- the node's parameter parser
HOSTILE_PARAM_VALUES = {
    float: [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-9, 1e10, 1e308, -1e308, "1.0", True, None, 1],
    int: [-1, 0, 2 ** 31, 2 ** 63, 1.5, math.nan, "1", True, None],
    str: ["", "\n", "x" * 10000, "{bad", "null", "[1]", 1, None, True],
    bool: ["true", 1, 0, None, 1.0],
}


@pytest.mark.parametrize("node", [DEPTH_NODE, PRIOR_NODE])
def test_every_parameter_over_hostile_values(node):
    """parse_params either accepts a value or raises ParameterError in one sentence naming the parameter;
    an accepted value gives settings the pipeline runs one frame with (static pose)."""
    from depth_prior_ros.geometry.camera import PinholeCamera
    from depth_prior_ros.pipeline import DepthPipeline, FrameError

    camera = PinholeCamera(np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]]), 64, 48)
    image = np.full((48, 64, 3), 100, np.uint8)
    tried = 0
    for param in SPEC:
        if node not in param.nodes:
            continue
        for value in HOSTILE_PARAM_VALUES[param.type] + [param.minimum, param.maximum]:
            if value is None and (param.minimum is None and param.maximum is None):
                continue
            tried += 1
            try:
                settings = parse_params(node, {param.name: value}, check_files=False)
            except ParameterError as exc:
                text = str(exc)
                assert f"'{param.name}'" in text and "\n" not in text and len(text) < 300, text
                continue
            pipe = DepthPipeline(None, settings.pipeline)
            try:
                result = pipe.process(image, camera, settings.pose.static_pose())
            except FrameError as exc:  # e.g. a camera pitched so it sees no road: a dropped frame
                assert "\n" not in str(exc)
                continue
            assert result.depth.shape == (48, 64)
            known = result.depth[np.isfinite(result.depth)]
            assert np.all(known > 0), (param.name, value)
    assert tried > 100


@pytest.mark.ros
def test_a_node_at_the_bounds_of_its_parameters_starts_and_publishes(tmp_path):
    """The extreme values the spec accepts make a node that runs: real depth_node, real messages."""
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) is not installed")
    from depth_prior_ros.bench.driver import Driver
    from depth_prior_ros.processes import NodeProcess, choose_domain_id, isolated_ros, unique_namespace

    bounds = {p.name: p.minimum if p.type is float and p.minimum is not None and not p.open_minimum
              else p.maximum for p in SPEC if DEPTH_NODE in p.nodes and p.type in (float, int)
              and p.maximum is not None}
    bounds.update(diagnostics_period=0.1, qos_reliability="reliable", qos_depth=10, use_tf=False,
                  min_depth=0.5, max_depth=10_000.0, camera_pitch_deg=5.0, camera_roll_deg=0.0,
                  camera_yaw_deg=0.0, camera_height=1.5)
    K = np.array([[50.0, 0.0, 31.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]])
    namespace = unique_namespace("bounds")
    with isolated_ros(choose_domain_id(), "shm"):
        proc = NodeProcess("depth_prior_ros.ros.depth_node", bounds, tmp_path / "node.log", namespace)
        driver = Driver(64, 48, K, namespace=namespace, reliable=True, qos_depth=10,
                        diagnostics_name=f"{namespace}/depth_node:")
        with proc, driver:
            driver.wait_connected([driver.pub_image, driver.pub_info], ["depth"], 30.0)
            assert driver.send_until_counted(driver.pub_info, driver.info_msg), proc.output()[-2000:]
            stamp = driver.publish_frame(info=False)
            assert driver.wait_for_output(stamp, 30.0) is not None, proc.output()[-2000:]
            assert proc.alive()
        assert "Traceback" not in proc.output()

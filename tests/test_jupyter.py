"""The README's Run command works: JupyterLab serves the book and runs its notebooks in the venv's kernel.

A reader runs ``jupyter lab <notebook>`` from a fresh clone; the tests run ``pytest --nbval``. The two
differ in one way that matters: nbval starts every kernel in the repository root, JupyterLab starts it
in the notebook's own folder. So this file proves two things.

1. The ``jupyter`` of this environment starts JupyterLab, which lists every notebook of the book, starts
   the kernel named in a notebook's metadata (``python3``: the environment's own ipykernel, with
   ``visarch`` importable), runs the first code cell of the page the README opens, and reports that
   notebook's folder as the kernel's working directory. Everything goes through the server's REST and
   websocket API on a loopback address; every wait is bounded, so a broken server fails instead of hanging.
2. No notebook depends on its working directory, so each runs the same from its folder and from the
   root. A static check reads every code cell of every notebook and rejects relative paths: literal
   paths given to anything that opens, lists, saves or executes files, and any other literal that looks
   like a relative file path. Paths anchored on a variable (a ``tempfile`` folder, a package's own
   folder) pass. The notebooks that touch files at all (today only ``training/at_scale``) do so inside
   ``tempfile`` folders, which the check accepts; it is not run a second time from its folder, since
   nbval runs it already and the static check covers the working directory.
"""

import ast
import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parents[1]
JUPYTER = Path(sys.executable).with_name("jupyter")
TIMEOUT = 60  # seconds; the bound on every wait for the server, the kernel or a reply

NOTEBOOKS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def code_cells(path):
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def readme_notebook():
    """The notebook the README's Run command opens: the test runs what a reader is told to run."""
    commands = re.findall(r"```bash\n(python3 -m venv .*)\n```", (ROOT / "README.md").read_text())
    opened = [m.group(1) for c in commands if (m := re.search(r"jupyter lab (\S+\.ipynb)$", c))]
    assert len(opened) == 1, "the README must give exactly one Run command ending in `jupyter lab <notebook>`"
    return ROOT / opened[0]


def isolated_env(home):
    """This environment's variables, with Jupyter's and IPython's own folders moved under ``home``.

    The user's configuration, kernels and running servers stay out of the test, and the test writes
    nothing into them. Kernels are still found in the environment's prefix, which is what a reader gets.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTER_TOKEN")}
    for variable, folder in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                             ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")]:
        (home / folder).mkdir(exist_ok=True)
        env[variable] = str(home / folder)
    return env


def test_jupyter_lab_is_installed_next_to_python(tmp_path):
    assert JUPYTER.exists(), f"{JUPYTER} is missing: requirements.txt must install JupyterLab"
    assert JUPYTER.with_name("jupyter-lab").exists(), "`jupyter lab` runs jupyter-lab, which JupyterLab installs"
    run = subprocess.run([str(JUPYTER), "lab", "--version"], capture_output=True, text=True, timeout=TIMEOUT,
                         env=isolated_env(tmp_path))
    assert run.returncode == 0, run.stderr[-2000:]
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", run.stdout.strip()), run.stdout


@dataclass
class Server:
    url: str
    token: str
    process: subprocess.Popen
    log: Path

    def request(self, method, path, body=None, expect=200):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        # An empty ProxyHandler: a proxy from the environment must not see loopback requests.
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=TIMEOUT) as reply:
            assert reply.status == expect, f"{method} {path}: {reply.status}"
            text = reply.read().decode()
        return json.loads(text) if reply.headers.get_content_type() == "application/json" and text else text

    def log_tail(self):
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab started with the README's command, on a loopback port the system picks, quiet and offline."""
    home = tmp_path_factory.mktemp("jupyter")
    env = isolated_env(home)
    token = secrets.token_hex(24)
    command = [str(JUPYTER), "lab", "--no-browser", "--ip=127.0.0.1",
               "--port=0", "--ServerApp.port_retries=0",  # port 0: the system picks a free one, no race
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
               "--ServerApp.terminals_enabled=False",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               # a server orphaned by a killed test run stops by itself once idle
               "--ServerApp.shutdown_no_activity_timeout=600"]
    if os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI often run as root; a reader's shell does not
    log = home / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, cwd=home)
    try:
        server = Server("", token, process, log)
        deadline = time.monotonic() + TIMEOUT
        # The chosen port is known only from the server's info file, written once it listens.
        while not server.url:
            assert process.poll() is None, f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}"
            assert time.monotonic() < deadline, f"jupyter lab wrote no server info in {TIMEOUT} s:\n{server.log_tail()}"
            for info in Path(env["JUPYTER_RUNTIME_DIR"]).glob("jpserver-*.json"):
                try:
                    server.url = f"http://127.0.0.1:{json.loads(info.read_text())['port']}"
                except (ValueError, KeyError):
                    pass  # still being written
            time.sleep(0.2)
        while True:
            try:
                server.request("GET", "/api/status")
                break
            except OSError as error:
                assert process.poll() is None, f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}"
                assert time.monotonic() < deadline, f"{server.url} did not answer: {error}\n{server.log_tail()}"
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()  # the server stops its kernels on SIGTERM
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def test_lab_serves_its_page(lab):
    page = lab.request("GET", "/lab")
    assert "<html" in page.lower() and "jupyter" in page.lower()


def test_lab_lists_every_notebook_of_the_book(lab):
    chapters = sorted({p.parent.relative_to(ROOT).as_posix() for p in NOTEBOOKS})
    assert chapters, "the book has no notebook"
    for chapter in chapters:
        listing = lab.request("GET", f"/api/contents/{chapter}")
        listed = {item["name"] for item in listing["content"] if item["type"] == "notebook"}
        on_disk = {p.name for p in (ROOT / chapter).glob("*.ipynb")}
        assert listed == on_disk, f"{chapter}: JupyterLab lists {sorted(listed)}, the folder holds {sorted(on_disk)}"


async def execute(channels, code):
    """Run ``code`` on an open kernel websocket: (execute_reply content, stdout, error outputs)."""
    msg_id = uuid.uuid4().hex
    await channels.write_message(json.dumps({
        "channel": "shell",
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex,
                   "username": "test", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    reply, stdout, errors, idle = None, [], [], False
    # iopub output may arrive after the shell reply; the kernel going idle closes the request.
    while reply is None or not idle:
        message = await asyncio.wait_for(channels.read_message(), TIMEOUT)
        assert message is not None, "the kernel websocket closed"
        if isinstance(message, bytes):
            continue  # binary frames carry buffers, which these cells do not produce
        message = json.loads(message)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "execute_reply":
            reply = content
        elif kind == "stream" and content["name"] == "stdout":
            stdout.append(content["text"])
        elif kind == "error":
            errors.append("\n".join(content["traceback"]))
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    return reply, "".join(stdout), errors


async def run_in_kernel(lab, kernel_id, codes):
    request = HTTPRequest(f"ws{lab.url[4:]}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}",
                          headers={"Authorization": f"token {lab.token}"}, connect_timeout=TIMEOUT,
                          request_timeout=TIMEOUT)
    channels = await websocket_connect(request)
    try:
        return [await execute(channels, code) for code in codes]
    finally:
        channels.close()


def test_lab_runs_the_readme_notebook_in_its_folder_with_the_venv_kernel(lab):
    notebook = readme_notebook()
    path = notebook.relative_to(ROOT).as_posix()
    kernel_name = json.loads(notebook.read_text())["metadata"]["kernelspec"]["name"]
    assert kernel_name in lab.request("GET", "/api/kernelspecs")["kernelspecs"], f"no kernel {kernel_name!r}"
    body = {"path": path, "name": notebook.name, "type": "notebook", "kernel": {"name": kernel_name}}
    session = lab.request("POST", "/api/sessions", body=body, expect=201)
    try:
        first_cell = code_cells(notebook)[0]
        probe = "import os, sys\nprint(os.getcwd())\nprint(sys.prefix)"
        results = asyncio.run(run_in_kernel(lab, session["kernel"]["id"], [first_cell, probe]))
    finally:
        lab.request("DELETE", f"/api/sessions/{session['id']}", expect=204)
    for (reply, _, errors), what in zip(results, ("the first code cell", "the probe"), strict=True):
        assert reply["status"] == "ok", f"{path}, {what}: {reply.get('ename')}: {reply.get('evalue')}\n{errors}"
    cwd, prefix = results[1][1].splitlines()
    # JupyterLab's kernel runs where the notebook is, unlike nbval's, which runs in the repository root.
    assert os.path.realpath(cwd) == os.path.realpath(notebook.parent), f"kernel working directory {cwd}"
    assert os.path.realpath(prefix) == os.path.realpath(sys.prefix), f"kernel {kernel_name} runs in {prefix}"


# --- No notebook depends on its working directory ---------------------------------------------------------

FILE_SUFFIX = re.compile(
    r"\.(png|jpe?g|gif|svg|pdf|npz|npy|pt|pth|ckpt|pkl|pickle|csv|tsv|json|jsonl|ya?ml|txt|md|ipynb|py|h5|hdf5"
    r"|gz|zip|tar|bin|log)$",
    re.IGNORECASE,
)
# Segments of a relative path: "runs/cvt", "../src", "data/"; a number ("ViT-B/16", "weights/1024") is no
# file name, which keeps the notebooks' many ratio labels out.
PATH_SEGMENTS = re.compile(r"(\.{1,2}|[A-Za-z_][\w.\-]*)(/(\.{1,2}|[A-Za-z_][\w.\-]*))*/?")

# Calls that take a path, by the last part of their name: which positional arguments are paths.
# read_text(), write_text(), read_bytes(), glob() on a Path are not here: their path is the Path itself,
# checked where it is built.
PATH_CALLS = {
    "open": (0,), "load": (0,), "save": (0, 1), "savez": (0,), "savez_compressed": (0,), "savetxt": (0,),
    "loadtxt": (0,), "genfromtxt": (0,), "fromfile": (0,), "tofile": (0,), "memmap": (0,), "savefig": (0,),
    "imread": (0,), "imsave": (0,), "imwrite": (0,), "read_csv": (0,), "to_csv": (0,), "read_json": (0,),
    "to_json": (0,), "Path": (0,), "PurePath": (0,), "PosixPath": (0,), "listdir": (0,), "makedirs": (0,),
    "rmtree": (0,), "glob": (0,), "iglob": (0,),
}
# Ambiguous names ("remove" of a list, "copy" of a tensor), checked only when called from these modules.
MODULE_PATH_CALLS = {
    "os": {"chdir": (0,), "remove": (0,), "unlink": (0,), "mkdir": (0,), "rmdir": (0,), "rename": (0, 1),
           "replace": (0, 1), "scandir": (0,), "walk": (0,), "stat": (0,)},
    "os.path": {"join": (0,), "exists": (0,), "isfile": (0,), "isdir": (0,), "getsize": (0,), "abspath": (0,),
                "realpath": (0,)},
    "shutil": {"copy": (0, 1), "copy2": (0, 1), "copyfile": (0, 1), "copytree": (0, 1), "move": (0, 1)},
    "glob": {"glob": (0,), "iglob": (0,)},
    "sys.path": {"append": (0,), "insert": (1,)},
}
PATH_KEYWORDS = {"file", "fname", "f", "path", "filename", "path_or_buf", "src", "dst"}
COMMAND_CALLS = {"run", "call", "check_call", "check_output", "Popen", "system", "popen"}
COMMAND_MODULES = {"subprocess", "os"}
CWD_CALLS = {("os", "getcwd"), ("os", "getcwdb"), ("Path", "cwd"), ("pathlib.Path", "cwd")}
# Magics that read, write or change folders; others (%time, %matplotlib) touch no file.
FILE_MAGICS = {"cd", "pushd", "popd", "bookmark", "run", "load", "loadpy", "save", "writefile", "file"}


def dotted(node):
    """``a.b.c`` for a name or attribute chain, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := dotted(node.value)):
        return f"{base}.{node.attr}"
    return None


def literal_start(node):
    """The literal text a string expression starts with, or None when it starts with a variable."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        # f"{folder}/x.pt" is anchored on folder; f"runs/{name}.png" starts in the working directory.
        return "".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values)
    return None


def is_relative(text):
    """Any literal used as a path: everything but an absolute or home-relative one is resolved in the cwd."""
    return not text.startswith(("/", "~")) and "://" not in text


def looks_like_relative_path(text):
    if not text or any(c.isspace() for c in text) or not is_relative(text) or ":" in text:
        return False
    return bool(FILE_SUFFIX.search(text) and re.fullmatch(r"[\w.\-/]+", text)) or (
        "/" in text and bool(PATH_SEGMENTS.fullmatch(text)))


def shell_words(node):
    """The literal words of a command: a list of arguments or a shell string."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return [w for e in node.elts if (w := literal_start(e)) is not None]
    text = literal_start(node)
    return text.split() if text else []


def cwd_dependencies(source):
    """``(line, what)`` for every place in one cell's source that resolves a path in the working directory."""
    found, python = [], []
    lines = source.splitlines()
    if lines and lines[0].startswith("%%"):
        magic = (lines[0][2:].split() or [""])[0]
        if magic in FILE_MAGICS:
            return [(1, lines[0])]
        if magic in {"bash", "sh", "script", "system"}:
            return [(i, w) for i, line in enumerate(lines[1:], 2) for w in line.split() if looks_like_relative_path(w)]
        lines = ["", *lines[1:]]
    for i, line in enumerate(lines, 1):
        stripped = line.lstrip()
        if stripped.startswith("%"):
            if (stripped[1:].split() or [""])[0] in FILE_MAGICS:
                found.append((i, stripped))
            line = ""
        elif stripped.startswith("!"):
            found += [(i, w) for w in stripped[1:].split() if looks_like_relative_path(w)]
            line = ""
        python.append(line)
    tree = ast.parse("\n".join(python))

    anchored = set()  # literals joined onto another path, which carry the check themselves
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            anchored.add(id(node.right))
        elif isinstance(node, ast.Call):
            name = dotted(node.func) or ""
            last = name.rsplit(".", 1)[-1]
            if last in ("Path", "PurePath", "PosixPath", "joinpath") or name in ("os.path.join", "path.join"):
                anchored.update(id(a) for a in node.args[0 if last == "joinpath" else 1:])

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = dotted(node.func) or (node.func.attr if isinstance(node.func, ast.Attribute) else "")
            module, _, last = name.rpartition(".")
            if (module, last) in CWD_CALLS or (last in ("Path", "PurePath", "PosixPath") and not node.args):
                found.append((node.lineno, f"{name}(): the working directory itself"))
            if module in COMMAND_MODULES and last in COMMAND_CALLS and node.args:
                command = node.args[0]
                found += [(node.lineno, w) for w in shell_words(command) if looks_like_relative_path(w)]
                anchored.update(id(e) for e in [command, *getattr(command, "elts", [])])
                continue
            positions = MODULE_PATH_CALLS.get(module, {}).get(last)
            if positions is None:
                positions = PATH_CALLS.get(last, ())
                if last in ("glob", "iglob") and module not in ("", "glob"):
                    positions = ()  # a Path's glob() is relative to that Path
            arguments = [a for k, a in enumerate(node.args) if k in positions]
            arguments += [kw.value for kw in node.keywords if kw.arg in PATH_KEYWORDS and positions]
            for argument in arguments:
                text = literal_start(argument)
                if text is not None and is_relative(text):
                    found.append((node.lineno, f"{name}({text!r})"))
                anchored.add(id(argument))
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            anchored.update(id(v) for v in node.values)  # judged whole, below
        if id(node) in anchored:
            continue
        text = literal_start(node)
        if text is not None and looks_like_relative_path(text):
            found.append((node.lineno, repr(text)))
    return sorted(set(found))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT / "book").as_posix())
def test_notebook_does_not_depend_on_its_working_directory(notebook):
    problems = []
    # Code cells counted from 1, as the execution counts of a clean run show them: In [n].
    for n, source in enumerate(code_cells(notebook), 1):
        try:
            problems += [f"code cell {n}, line {line}: {what}" for line, what in cwd_dependencies(source)]
        except SyntaxError as error:
            problems.append(f"code cell {n}: not Python this check can read ({error.msg}, line {error.lineno})")
    assert not problems, (
        f"{notebook.relative_to(ROOT)} resolves paths in the working directory, which is the notebook's "
        "folder in JupyterLab and the repository root under nbval; anchor them on a package folder or a "
        "tempfile folder:\n" + "\n".join(problems))


@pytest.mark.parametrize("source", [
    'open("notes.txt")', 'np.save("w.npy", w)', 'torch.save(model.state_dict(), "model.pt")',
    'fig.savefig("figure.png")', 'Path("data") / "x.csv"', 'Path("runs/cvt").read_text()', 'x = "data/digits"',
    'os.listdir(".")', 'glob.glob("*.png")', 'subprocess.run(["python", "scripts/train.py"])',
    'sys.path.insert(0, "../src")', 'os.getcwd()', 'Path.cwd()', 'Path()', 'plt.imread(f"images/{name}.png")',
    '%cd ..', '!ls data/', '%%writefile train.py\nprint(1)', 'torch.load(os.path.join("runs", name))',
])
def test_the_check_sees_working_directory_paths(source):
    assert cwd_dependencies(source), source


@pytest.mark.parametrize("source", [
    'with tempfile.TemporaryDirectory() as folder:\n    torch.save(x, Path(folder, "data.pt"))',
    'torch.load(f"{folder}/data.pt")', 'Path(visarch.__file__).parent / "data" / "x.npz"',
    'subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", Path(folder, "t.py")])',
    'print("ViT-B/16 CLIP:", ratio, "weights/1024", f"{a}/{b}", "conv 7x7/2")', 'names.remove("conv")',
    'plt.plot(x, y, ".")', '", ".join(parts)', 'root.glob("*.png")', '%matplotlib inline',
    'images = data.camera()', 'path = trajectory(step, f, start)',
])
def test_the_check_lets_anchored_paths_and_labels_pass(source):
    assert not cwd_dependencies(source), source

"""Every shell command of README.md, docs/*.md and the configs' READMEs runs as written
after the README's set-up, in a new shell with the environment entered (`source
.venv/bin/activate`: `python` on PATH is the environment's).

Each ```bash block is read command by command (continuation lines joined, comments and
leading ``VAR=value`` assignments dropped). For each command: the script or tool exists,
every repository path it names exists (globs match something), every ``--flag`` is one the
script accepts, and each Python tool of ``tools/`` and ``demo/`` answers ``--help`` (exit
0) in such a shell. ``make`` targets exist in the Makefile. Placeholders (CONFIG,
CHECKPOINT...) and outputs (``work_dirs/...``) are not checked."""
import glob
import os
import os.path as osp
import re
import shlex
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = ['README.md'] + sorted(
    glob.glob(osp.join(ROOT, 'docs', '*.md')) +
    glob.glob(osp.join(ROOT, 'configs', '*', 'README.md')))
#: folders of the repository whose files a command may name as inputs
REPO_DIRS = ('configs/', 'projects/', 'docs/', 'tools/', 'tests/', 'demo/')


def documented_commands():
    """``(doc, command)`` for every command of a ```bash block of :data:`DOCS`."""
    out = []
    for doc in DOCS:
        with open(osp.join(ROOT, doc)) as f:
            text = f.read()
        for block in re.findall(r'```(?:bash|sh|shell)\n(.*?)```', text, re.S):
            command = ''
            for line in block.splitlines():
                line = re.sub(r'(^|\s)#.*$', '', line).rstrip()  # comments
                if line.endswith('\\'):
                    command += line[:-1] + ' '
                    continue
                command = (command + line).strip()
                if command:
                    out.append((osp.relpath(osp.join(ROOT, doc), ROOT), command))
                command = ''
    return out


def _words(command):
    words = shlex.split(command)
    while words and re.match(r'^[A-Z_]+=', words[0]):  # VAR=value before the command
        words.pop(0)
    return words


def _script(words):
    """The file a command runs (``python X.py``, ``bash X.sh``, ``tools/X.sh``), or None."""
    if len(words) >= 2 and words[0] in ('python', 'bash') and not words[1].startswith('-'):
        return words[1].replace('$MIM/', '')
    if words and words[0].endswith('.sh'):
        return words[0]
    return None


COMMANDS = documented_commands()
SCRIPTS = sorted({
    _script(_words(c))
    for _, c in COMMANDS if _script(_words(c)) and _script(_words(c)).startswith((
        'tools/', 'demo/', 'projects/')) and _script(_words(c)).endswith('.py')
})


def _shell_env():
    """A new shell after `source .venv/bin/activate`: the environment's python first on
    PATH (here: the interpreter running the tests), this checkout importable."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHON')}
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    env['PYTHONPATH'] = ROOT
    env['OMP_NUM_THREADS'] = '1'
    return env


#: Runs each script given as an argument as ``python SCRIPT --help`` would (as
#: ``__main__``, with ``sys.argv`` set), all in one interpreter so that torch and the
#: libraries are imported once; prints ``{script: [exit code, output]}`` as JSON.
_HELP_DRIVER = """
import contextlib, io, json, runpy, sys
out = {}
for script in sys.argv[1:]:
    sys.argv = [script, '--help']
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            runpy.run_path(script, run_name='__main__')
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:
        code, buf = 1, io.StringIO(buf.getvalue() + repr(exc))
    out[script] = [code, buf.getvalue()]
print(json.dumps(out))
"""


@pytest.fixture(scope='module')
def helps():
    """``script -> (exit code, --help output)`` of every documented Python tool, run by
    the shell's ``python``."""
    import json
    proc = subprocess.run(['python', '-c', _HELP_DRIVER, *SCRIPTS],
                          cwd=ROOT,
                          env=_shell_env(),
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {s: tuple(v) for s, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


def test_the_docs_have_commands():
    assert len(COMMANDS) > 50 and 'tools/train.py' in SCRIPTS and 'demo/image_demo.py' in SCRIPTS


def test_every_documented_tool_answers_help(helps):
    failed = {s: out[-600:] for s, (code, out) in helps.items() if code != 0}
    assert not failed, failed


@pytest.mark.parametrize('doc,command', COMMANDS, ids=[f'{d}:{c[:60]}' for d, c in COMMANDS])
def test_documented_command(doc, command, helps):
    words = _words(command)
    if not words or words[0] in ('pip', 'export', 'source') or '$(' in command:
        return  # installation and shell set-up: docs/setup.md, run by `make setup`
    if words[0] == 'make':
        with open(osp.join(ROOT, 'Makefile')) as f:
            targets = re.findall(r'^([\w-]+):', f.read(), re.M)
        assert set(words[1:]) <= set(targets), f'{doc}: {command}'
        return
    script = _script(words)
    if words[:3] == ['python', '-m', 'pytest']:
        args = [w for w in words[3:] if not w.startswith('-') and '/' in w]
        assert all(osp.exists(osp.join(ROOT, a)) for a in args), f'{doc}: {command}'
        return
    assert script is not None, f'{doc}: not a command of the project: {command}'
    assert osp.isfile(osp.join(ROOT, script)), f'{doc}: {script} does not exist'
    if script.endswith('.sh'):
        assert os.access(osp.join(ROOT, script), os.X_OK), f'{script} is not executable'
    for word in words[2:] if words[0] in ('python', 'bash') else words[1:]:
        word = word.strip('[]')
        if word.startswith(REPO_DIRS) and not word.startswith('tools/analysis_tools/..'):
            assert glob.glob(osp.join(ROOT, word)), f'{doc}: {word} does not exist ({command})'
    if script in helps:
        code, text = helps[script]
        flags = set(re.findall(r'(?<![\w-])--[a-z][\w-]*', ' '.join(words[2:])))
        unknown = [f for f in sorted(flags) if not re.search(rf'{f}(?![\w-])', text)]
        assert not unknown, f'{doc}: {script} does not accept {unknown} ({command})'


def test_the_readme_says_how_to_enter_the_environment():
    """A new shell does not have the .venv's packages: the README says how to enter it
    before its first `python tools/...` command."""
    with open(osp.join(ROOT, 'README.md')) as f:
        text = f.read()
    assert 'source .venv/bin/activate' in text
    assert text.index('source .venv/bin/activate') < text.index('python tools/')

"""Tasks from outside the package (es_hpc/tasks/__init__.py): `package.module:ClassName` from a real module file,
the es_hpc.tasks entry-point group by short name, and one-line errors naming task.name for every bad name."""
import textwrap

import pytest

from es_hpc import tasks
from es_hpc.config import ConfigError

MODULE = '''
from es_hpc.tasks import Task


class Echo(Task):
    """Rows are the options' words; reward 1 iff the completion repeats the row's word."""

    name = "echo"

    def __init__(self, words=("a", "b"), loud: bool = False):
        if not words:
            raise ValueError("echo: no words")
        self.words, self.loud = list(words), loud

    def rows(self, split):
        return [{"word": w} for w in self.words]

    def prompt(self, row):
        return [{"role": "user", "content": row["word"]}]

    def reward(self, completion, row):
        want = row["word"].upper() if self.loud else row["word"]
        return 1.0 if completion.strip() == want else 0.0


class Anything(Task):
    def __init__(self, **options):
        self.options = options


class Bare(Task):
    pass


NOT_A_TASK = 42
'''


@pytest.fixture
def module(tmp_path, monkeypatch):
    """A task module written to a folder on sys.path, imported by es_hpc like any installed one."""
    (tmp_path / "my_es_tasks.py").write_text(MODULE)
    (tmp_path / "broken_es_tasks.py").write_text("raise RuntimeError('no GPU here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_module_class_path_builds_the_task_with_its_options(module):
    task = tasks.get("my_es_tasks:Echo", words=["hi", "yo"], loud=True)
    assert type(task).__module__ == "my_es_tasks" and isinstance(task, tasks.Task)
    assert task.rows("train") == [{"word": "hi"}, {"word": "yo"}]
    assert task.reward(" HI\n", {"word": "hi"}) == 1.0 and task.reward("hi", {"word": "hi"}) == 0.0
    assert tasks.resolve("my_es_tasks:Echo") is type(task)
    assert tasks.get("my_es_tasks:Anything", x=1, y=[2]).options == {"x": 1, "y": [2]}  # **options: all accepted
    assert isinstance(tasks.get("my_es_tasks:Bare"), tasks.Task)


def test_options_of_a_custom_task_are_checked_against_its_signature(module):
    with pytest.raises(ConfigError, match=r"^task.options.colour: unknown option of my_es_tasks:Echo \(known: "
                                          r"words, loud\)$"):
        tasks.get("my_es_tasks:Echo", colour="red")
    with pytest.raises(ConfigError, match=r"^task.options.x: unknown option of my_es_tasks:Bare \(known: none\)$"):
        tasks.get("my_es_tasks:Bare", x=1)
    with pytest.raises(ConfigError, match=r"^task.options: echo: no words$"):  # the task's own ValueError
        tasks.get("my_es_tasks:Echo", words=[])


@pytest.mark.parametrize("name, message", [
    ("no_such_es_module:Task", r"cannot import module 'no_such_es_module' \(ModuleNotFoundError: No module named"),
    ("broken_es_tasks:Task", r"cannot import module 'broken_es_tasks' \(RuntimeError: no GPU here\)"),
    ("my_es_tasks:Missing", r"module 'my_es_tasks' has no 'Missing'"),
    ("my_es_tasks:NOT_A_TASK", r"'my_es_tasks:NOT_A_TASK' \(from module my_es_tasks\) is not a subclass of "
                               r"es_hpc.tasks.Task: 42"),
    ("my_es_tasks:", r"'my_es_tasks:' is not package.module:ClassName"),
    (":Echo", r"':Echo' is not package.module:ClassName"),
    ("gsm9k", r"unknown task 'gsm9k'; known tasks: arithmetic, gsm8k, arc_challenge, winogrande, countdown, "
              r"prompt_answer(, .*)?; or package.module:ClassName"),
])
def test_bad_task_names_are_one_line_errors_naming_task_name(module, name, message):
    for call in (lambda: tasks.get(name), lambda: tasks.check_options(name, {})):
        with pytest.raises(ConfigError, match=rf"^task.name: {message}") as err:
            call()
        assert "\n" not in str(err.value)


@pytest.fixture
def installed(module):
    """A distribution on sys.path (a dist-info folder, as pip leaves one) registering entry points of es_hpc.tasks:
    one good, one pointing at a missing class, one not a Task, one shadowing a built-in name."""
    info = module / "my_es_tasks-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-es-tasks\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [es_hpc.tasks]
        echo = my_es_tasks:Echo
        gone = my_es_tasks:Missing
        number = my_es_tasks:NOT_A_TASK
        gsm8k = my_es_tasks:Echo
        """))
    return module


def test_installed_entry_points_register_tasks_by_short_name(installed):
    assert {"echo", "gone", "number", "gsm8k"} <= set(tasks.installed())
    task = tasks.get("echo", words=["x"])
    assert type(task).__name__ == "Echo" and task.rows("train") == [{"word": "x"}]
    assert type(tasks.get("gsm8k")).__module__ == "es_hpc.tasks.gsm8k"  # a built-in name is the built-in
    with pytest.raises(ConfigError, match=r"^task.name: unknown task 'ech'; known tasks: arithmetic, .*prompt_answer, "
                                          r"(.*, )?echo, (.*, )?gone, "):
        tasks.get("ech")
    with pytest.raises(ConfigError, match=r"^task.name: cannot load 'gone' from its entry point 'my_es_tasks:Missing' "
                                          r"\(AttributeError: "):
        tasks.get("gone")
    with pytest.raises(ConfigError, match=r"^task.name: 'number' \(entry point my_es_tasks:NOT_A_TASK\) is not a "
                                          r"subclass of es_hpc.tasks.Task"):
        tasks.get("number")

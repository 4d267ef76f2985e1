from pathlib import Path

import pytest
import yaml

from scraper.config.settings import SETTING_FIELDS, Settings, build_settings, flag_name
from scraper.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str | bytes) -> Settings:
    path = tmp_path / "settings.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return build_settings(path, {})


def error_of(tmp_path: Path, text: str | bytes) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_values_from_file_and_flags_override_them(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("threads: 4\npage_deadline_s: 12\nheaders:\n  Accept-Language: fr\n")
    settings = build_settings(path, {"threads": 9})
    assert (settings.threads, settings.page_deadline_s) == (9, 12.0)
    assert settings.headers == {"Accept-Language": "fr"}


def test_unknown_key_names_file_line_and_suggests(tmp_path: Path) -> None:
    message = error_of(tmp_path, "threads: 2\nthreds: 3\n")
    assert message.endswith("settings.yaml:2: threds: unknown setting; did you mean 'threads'?")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("threads: many\n", ":1: threads: expected int, got str"),
        ("threads: 0\n", "below the minimum 1"),
        ("threads: 5000\n", "above the maximum"),
        ("user_agent: yes\n", "got a boolean; quote it"),
        ("parser: html5\n", "'html5' is not one of lxml, bs4"),
        ("quiet: 1\n", "expected true or false"),
        ("page_deadline_s: .nan\n", "NaN"),
        ("threads: 2\nthreads: 3\n", ":2: threads: duplicate setting"),
        ("headers: {'Bad Name': x}\n", "invalid header"),
    ],
)
def test_bad_values_name_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("threads: !!python/object/apply:os.system ['true']\n", ":1: threads: could not"),
        ("a: &a [1]\nb: *a\n", "aliases are not supported"),
        ("threads: 2\n\tprocesses: 1\n", ":2: invalid YAML"),
        ("- threads\n- 2\n", ":1: expected a mapping"),
        ("", "empty settings file"),
        ("# only a comment\n", "empty settings file"),
        (b"user_agent: \xff\xfe\n", ":1: settings file is not UTF-8"),
        ("threads: [1\n", "invalid YAML"),
    ],
)
def test_hostile_files_are_refused_with_one_line(
    tmp_path: Path, text: str | bytes, expected: str
) -> None:
    assert expected in error_of(tmp_path, text)


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 9)}]" for i in range(1, 10)]
    assert "aliases" in error_of(tmp_path, "\n".join(lines) + "\n")


def test_huge_file_is_refused_without_parsing(tmp_path: Path) -> None:
    assert "over" in error_of(tmp_path, "# " + "x" * (2 * 1024 * 1024) + "\n")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read settings file"):
        build_settings(tmp_path / "nope.yaml", {})


def test_every_setting_is_in_the_example_config_with_its_default() -> None:
    documented = yaml.safe_load((REPO / "config" / "scraper.yaml").read_text(encoding="utf-8"))
    defaults = Settings()
    assert set(documented) == set(SETTING_FIELDS)
    for name, value in documented.items():
        if name == "sites":
            value = tuple(value)
        assert value == getattr(defaults, name), name


def test_the_example_config_loads() -> None:
    assert build_settings(REPO / "config" / "scraper.yaml", {}) == Settings()


def test_flag_names_follow_the_setting_names() -> None:
    assert flag_name("page_deadline_s") == "--page-deadline"
    assert flag_name("max_body_bytes") == "--max-body-bytes"
    assert len({flag_name(n) for n in SETTING_FIELDS}) == len(SETTING_FIELDS)


def test_an_output_dir_scrape_did_not_make_is_refused_naming_file_and_line(
    tmp_path: Path,
) -> None:
    """An absolute output_dir full of someone else's files: exit 2 before any request, one
    line naming the settings file and the line, as every other config error."""
    import io

    from scraper import cli
    from tests.servers import ok, serve

    theirs = tmp_path / "their-folder"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("not scrape's")
    config = tmp_path / "settings.yaml"
    config.write_text(f"threads: 2\noutput_dir: {theirs}\n")
    with serve({"/ok": ok}) as site:
        (tmp_path / "urls.txt").write_text(site.origin + "/ok\n")
        err = io.StringIO()
        code = cli.main([str(tmp_path / "urls.txt"), "-c", str(config)], stderr=err)
    assert code == 2
    assert err.getvalue() == (
        f"scrape: {config}:2: output_dir {theirs}: holds files scrape did not write "
        "(such as 'notes.txt'); name an empty or new folder\n"
    )
    assert site.paths == []  # nothing was fetched
    assert sorted(p.name for p in theirs.iterdir()) == ["notes.txt"]  # nothing was written

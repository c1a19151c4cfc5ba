import pytest

from hfmem.errors import ModelRefError
from hfmem.refs import ModelRef, parse_ref
from hfmem.untrusted import without_credentials


@pytest.mark.parametrize(
    "text, repo_id, revision",
    [
        ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B", None),
        ("gpt2", "gpt2", None),
        ("Qwen/Qwen3-8B@v1.0", "Qwen/Qwen3-8B", "v1.0"),
        ("org/name@" + "a" * 40, "org/name", "a" * 40),
        ("https://hub.example/org/name", "org/name", None),
        ("https://hub.example/org/name/tree/dev", "org/name", "dev"),
    ],
)
def test_hub_references(text, repo_id, revision):
    ref = parse_ref(text)
    assert (ref.repo_id, ref.revision, ref.path) == (repo_id, revision, None)


def test_revision_option_applies_when_the_text_names_none():
    assert parse_ref("org/name", "dev").revision == "dev"


def test_pinned_only_for_full_commit_shas():
    assert parse_ref("org/name@" + "0123456789abcdef" * 2 + "01234567").pinned
    assert not parse_ref("org/name@main").pinned
    assert not parse_ref("org/name").pinned


@pytest.mark.parametrize("text", ["", "a//b", "org/name@", "too/many/parts", "bad name!", "./does-not-exist"])
def test_bad_references(text):
    with pytest.raises(ModelRefError):
        parse_ref(text)


def test_local_directory(tmp_path, monkeypatch):
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert parse_ref("org/name").path is None  # no config.json: still a repo id
    (tmp_path / "org" / "name" / "config.json").write_text("{}")
    assert parse_ref("org/name").path is not None
    assert parse_ref(str(tmp_path)).path == tmp_path


@pytest.mark.parametrize(
    "text, shown",
    [
        ("https://user:hf_token@hub.example/org/name", "https://hub.example/org/name"),
        ("https://hf_token@hub.example/org/name/tree/dev", "https://hub.example/org/name/tree/dev"),
        ("https://user:p@ss@hub.example/org/name", "https://hub.example/org/name"),  # an unescaped '@' in it
        ("http://user:hf_token@hub.example:8080/org/name", "http://hub.example:8080/org/name"),
        ("https://hub.example/org/name?x=a@b", "https://hub.example/org/name?x=a@b"),  # no userinfo
    ],
)
def test_url_credentials_are_never_kept(text, shown):
    ref = parse_ref(text)
    assert ref.text == shown and ref.repo_id == "org/name"
    assert without_credentials(text) == shown


def test_url_credentials_are_not_in_errors():
    with pytest.raises(ModelRefError) as raised:
        parse_ref("https://user:hf_secret@hub.example/bad name!")
    assert "hf_secret" not in str(raised.value)


def test_a_url_that_does_not_parse_is_a_reference_error():
    with pytest.raises(ModelRefError, match="is not a URL hfmem reads"):
        parse_ref("https://[hub.example/org/name")


def test_pinned_means_exactly_a_commit_id():
    assert not ModelRef("org/name@x", "org/name", "0" * 40 + "\n").pinned  # the old regex's `$` let this through
    assert not ModelRef("org/name@x", "org/name", "A" * 40).pinned


def test_a_revision_in_the_reference_and_another_from_the_option_is_an_error():
    assert parse_ref("org/name@v1", "v1").revision == "v1"
    with pytest.raises(ModelRefError, match="names revision 'v1' but revision 'v2' was asked for"):
        parse_ref("org/name@v1", "v2")


def test_reports_name_a_hub_model_by_its_repo_id():
    assert parse_ref("gpt2@" + "a" * 40).name == "gpt2"
    assert parse_ref("https://hub.example/org/name/tree/main").name == "org/name"

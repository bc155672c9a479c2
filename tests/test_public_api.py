import rag


def test_exported_members_exist_and_are_listed_once() -> None:
    assert len(rag.__all__) == len(set(rag.__all__))
    for name in rag.__all__:
        assert hasattr(rag, name), name
    public = {n for n in dir(rag) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(rag.__all__)

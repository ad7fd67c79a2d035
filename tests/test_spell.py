from searchkit.spell import SpellCorrector, _one_edit


def test_one_edit_kinds():
    assert _one_edit("wirless", "wireless")  # insertion
    assert _one_edit("toilte", "toilet")  # adjacent swap
    assert _one_edit("faucat", "faucet")  # substitution
    assert _one_edit("lightt", "light")  # deletion
    assert not _one_edit("fan", "fan") and not _one_edit("faucet", "facets")


def test_unknown_words_get_the_most_frequent_neighbour():
    spell = SpellCorrector({"wireless": 10, "wireles": 1, "light": 50, "sight": 5, "toilet": 7})
    words, fixes = spell.correct(["wirless", "lihgt", "toilet", "1.9", "fna", "zzzzzz"])
    assert words == ["wireless", "light", "toilet", "1.9", "fna", "zzzzzz"]
    assert [(f.original, f.corrected) for f in fixes] == [("wirless", "wireless"), ("lihgt", "light")]


def test_known_and_short_words_untouched():
    spell = SpellCorrector({"sight": 5, "light": 50, "fan": 3})
    assert spell.suggest("sight") is None and spell.suggest("fna") is None and spell.suggest("m18") is None


def test_searcher_corrects_typos_and_explains(searcher):
    right = [h.product_id for h in searcher.search("wireless door knob", k=5, mode="lexical")]
    typo = searcher.search("wirless door knbo", k=5, mode="lexical", explain=True)
    assert [h.product_id for h in typo] == right
    assert typo[0].explain["corrections"] == [["wirless", "wireless"], ["knbo", "knob"]]
    searcher.spell_correct = False
    try:
        assert [h.product_id for h in searcher.search("wirless door knbo", k=5, mode="lexical")] != right
    finally:
        searcher.spell_correct = True

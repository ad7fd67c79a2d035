from searchkit.data.spell import SpellCorrector, _one_edit


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


def test_glued_words_split_into_the_most_used_pair_and_only_when_unknown():
    spell = SpellCorrector({"carpet": 9, "shampoo": 4, "car": 30, "pets": 2, "hammer": 5, "drill": 8, "ham": 1,
                            "backsplash": 6, "back": 20, "splash": 3})
    assert spell.split("carpetshampoo") == ("carpet", "shampoo")
    assert spell.split("hammerdrill") == ("hammer", "drill")  # "ham" + "merdrill": no such word
    assert spell.split("backsplash") is None  # known
    assert spell.split("carpets") is None  # "car" + "pets": "pets" is used by fewer than MIN_USES products
    assert spell.split("m18x") is None and spell.split("fanfan") is None
    words, fixes = spell.correct(["carpetshampoo", "wand"], compounds=True)
    assert words == ["carpet", "shampoo", "wand"]
    assert [(f.original, f.corrected) for f in fixes] == [("carpetshampoo", "carpet shampoo")]
    assert spell.correct(["carpetshampoo"])[0] == ["carpetshampoo"]  # compounds off: as before


def test_neighbouring_words_joined_when_the_catalog_writes_them_as_one():
    spell = SpellCorrector({"backsplash": 6, "back": 20, "splash": 3, "flow": 2, "backflow": 1})
    assert spell.joined(["tile", "back", "splash", "1", "2"]) == ["backsplash"]
    assert spell.joined(["back", "flow"]) == []  # "backflow" is used by too few products
    assert spell.joined(["back"]) == [] and spell.joined([]) == []


def test_two_words_are_written_as_one_when_the_shop_writes_them_so_and_lacks_one_of_them():
    """A small shop that sells "earbuds" and never says "buds": "ear buds" is searched as earbuds; "back splash",
    both of whose words the shop uses, stays two words (its keywords also look for "backsplash")."""
    spell = SpellCorrector({"earbuds": 8, "ear": 5, "headphones": 5, "phones": 4, "case": 9, "backsplash": 6,
                            "back": 20, "splash": 3})
    assert spell.parted(["ear", "buds"])[0] == ["earbuds"]
    words, fixes = spell.correct(["head", "phones", "case"], compounds=True)
    assert words == ["headphones", "case"] and [(f.original, f.corrected) for f in fixes] == [
        ("head phones", "headphones")]
    assert spell.correct(["back", "splash"], compounds=True)[0] == ["back", "splash"]
    assert spell.correct(["ear", "buds"])[0] == ["ear", "buds"]  # compounds off: as typed
    assert spell.parted(["ear", "buds", "case"])[0] == ["earbuds", "case"]  # a joined word is not joined again

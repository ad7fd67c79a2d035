import pytest

from searchkit.data.text import BrandMatcher, CachedStemmer, Normaliser, TextConfig, detect_brand, slug, words


def test_words_lowercase_and_keep_decimals():
    assert words("Whirlpool 1.9 cu. ft. Over-the-Range") == ["whirlpool", "1.9", "cu", "ft", "over", "the", "range"]
    assert words("") == [] and words(None) == []


def test_slug_joins_words():
    assert slug("Hampton Bay") == "hampton_bay" and slug(" Simpson Strong-Tie ") == "simpson_strong_tie"
    assert slug("") == ""


def test_product_text_matches_reference_recipe():
    norm = Normaliser(TextConfig())
    text = norm.product("Westinghouse 18 ft. Brushed Nickel Swag Light Kit", "Westinghouse", "Brushed Nickel")
    assert text == "westinghous 18 ft brush nickel swag light kit brand_westinghouse color_brushed_nickel"


def test_empty_brand_and_colour_add_no_token():
    assert Normaliser(TextConfig()).product("Garden Hose", "", None) == "garden hose"


def test_query_brand_detection_prefers_longest_known_brand():
    brands = BrandMatcher.from_names(["home", "home decorators collection", "kohler"])
    norm = Normaliser(TextConfig(query_brand="detect"), brands)
    assert norm.query_brand("Home Decorators Collection rug") == "home decorators collection"
    assert norm.query("kohler toilets").endswith("brand_kohler")
    assert norm.query_brand("elongated toilet") is None


def test_first_word_mode_is_the_reference_recipe():
    norm = Normaliser(TextConfig(query_brand="first_word"))
    assert norm.query("angle bracket") == "angl bracket brand_angle"


def test_config_rejects_unknown_values_and_roundtrips():
    with pytest.raises(ValueError):
        TextConfig(query_brand="sometimes")
    config = TextConfig(stem=False, query_brand="none")
    assert TextConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown text settings"):
        TextConfig.from_dict({"stem": True, "lowercase": True})


def test_stemmer_is_passed_in_and_cached():
    calls = []

    def fake(word):
        calls.append(word)
        return word[:3]

    stem = CachedStemmer(base=fake)
    norm = Normaliser(TextConfig(brand_token=False), stemmer=stem)
    assert norm.product("lights lights lamps") == "lig lig lam"
    assert calls == ["lights", "lamps"]
    assert CachedStemmer(known={"lights": "light"}, base=lambda w: 1 / 0)("lights") == "light"


def test_detect_brand_at_title_start_only():
    brands = BrandMatcher.from_names(["hampton bay", "delta"])
    assert detect_brand("Hampton Bay 52 in. Ceiling Fan", brands) == "hampton bay"
    assert detect_brand("Ceiling fan by Delta", brands) is None


def test_keyword_text_is_stemmed_even_when_the_model_reads_whole_words():
    brands = BrandMatcher.from_names(["westinghouse"])
    stemmed = Normaliser(TextConfig(), brands)
    assert stemmed.lexical is stemmed  # one normaliser, one text, when the model reads stemmed text
    whole = Normaliser(TextConfig(stem=False), brands)
    assert whole.query("Westinghouse ceiling fans") == "westinghouse ceiling fans brand_westinghouse"
    assert whole.lexical.query("Westinghouse ceiling fans") == stemmed.query("Westinghouse ceiling fans") == (
        "westinghous ceil fan brand_westinghouse")
    assert whole.lexical.product("Ceiling Fans", "Westinghouse", "White") == "ceil fan brand_westinghouse color_white"
    assert whole.lexical.stemmer is whole.stemmer and whole.lexical.brands is whole.brands
    assert whole.lexical.config == TextConfig(stem=True) and whole.lexical.lexical is whole.lexical


def test_measures_are_written_one_way():
    from searchkit.data.text import measures

    def m(text):
        return " ".join(measures(text.split()))

    assert m("18v drill") == "18 volt drill" and m("18 volt drill") == "18 volt drill"
    assert m("24in vanity") == m("24 inch vanity") == m("24 inches vanity") == "24 in vanity"
    assert m("2x4x8 lumber") == "2 x 4 x 8 lumber" and m("2 by 4") == "2 x 4" and m("4x") == "4 x"
    assert m("10 feet") == m("10ft") == "10 ft" and m("5 gallon bucket") == "5 gal bucket"
    assert m("60w bulb 6500k") == "60 watt bulb 6500 k"
    # model names, brands and unit words without a number stay
    assert m("t8 m18 3m par38 x") == "t8 m18 3m par38 x" and m("watt by feet") == "watt by feet"


def test_keyword_text_2_writes_measures_in_keyword_text_only():
    whole, stemmed = TextConfig(stem=False), TextConfig()
    for config in (whole, stemmed):
        norm = Normaliser(config, keyword_text=2)
        assert "20v" in norm.query("dewalt 20v drill").split()  # the model reads the words it was trained on
        assert norm.lexical is not norm and norm.lexical.query("dewalt 20v drill") == "dewalt 20 volt drill"
        assert norm.lexical.product("DEWALT 20-Volt Drill (2-Pack)") == "dewalt 20 volt drill 2 pack"
        old = Normaliser(config)  # version 1, as indexes built before it keep
        assert old.lexical.query("dewalt 20v drill") == "dewalt 20v drill"
    assert Normaliser(stemmed).lexical.query("x") == "x"
    with pytest.raises(ValueError, match="keyword text version"):
        Normaliser(stemmed, keyword_text=3)


def test_the_porter_stemmer_loaded_alone_stems_as_nltk_and_imports_no_nltk():
    """A query word the catalog never used is stemmed without importing the nltk package (1.6 s of a cold query)."""
    import subprocess
    import sys

    from nltk.stem.porter import PorterStemmer

    from tests.fixtures import make_catalog

    words_ = sorted({w for t in make_catalog(n=240, seed=7)["title"] for w in t.lower().split()} |
                    {"running", "generously", "relational", "hopefulness", "ceiling", "fans", "caresses", "ponies",
                     "sensational", "wireless", "backsplash", "dimmable"})
    script = ("import sys; from searchkit.data.text import _nltk_porter; stem = _nltk_porter(); "
              f"print(' '.join(stem(w) for w in {words_!r})); print('nltk' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    stems, imported = out.stdout.splitlines()
    assert stems.split() == [PorterStemmer().stem(w) for w in words_]
    assert imported == "False"

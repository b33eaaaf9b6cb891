"""Tweet debris and the NP rules: every oddity of tweets, and the mapping back to the original tokens."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from comipn_prep.nps.extract import extract_tweet_nps
from comipn_prep.nps.normalise import (BLANK, HASHTAG, MARK, MENTION, RT, SYMBOL, URL, WORD, tagger_token,
                                       token_kinds)
from comipn_prep.nps.rules import capitalised_runs, merge_overlapping, refine, split_at_barriers, trim

NEVER_INSIDE = {URL, RT, BLANK}


def nps(tokens):
    return [(np.start, np.end, np.text) for np in extract_tweet_nps(tokens).nps]


def texts(tokens):
    return [t for _, _, t in nps(tokens)]


def test_token_kinds_cover_tweet_debris():
    tokens = ["RT", "@jack", ":", "http://t.co/ab/c", "#NBA", "#", "Kawhi", "@", "djfive", "😀", "\xa0", "",
              "&amp;", "George", "2015", "www.example.com/x", "️"]
    assert token_kinds(tokens) == [RT, MENTION, SYMBOL, URL, HASHTAG, MARK, HASHTAG, MARK, MENTION, SYMBOL,
                                   BLANK, BLANK, SYMBOL, WORD, WORD, URL, SYMBOL]


def test_tagger_token_is_one_word_never_empty():
    for token in ["\xa0", "", " ", "a b", "New\tYork", "x\u2028y", "plain"]:
        out = tagger_token(token)
        assert out and not any(ch.isspace() for ch in out) and len(out.split(" ")) == 1
    assert tagger_token("plain") == "plain"


def test_rt_mention_and_url_never_inside_a_phrase():
    tokens = "RT @jack : George Zimmerman http://t.co/ab/c and A/B testing".split()
    found = nps(tokens)
    assert (3, 5, "George Zimmerman") in found
    assert (1, 2, "@jack") in found  # the mention is a phrase of its own
    for start, end, _ in found:
        assert all(tokens[i] not in ("RT", "http://t.co/ab/c", "and") for i in range(start, end))


def test_coordinated_phrases_are_split():
    tokens = "Photos of Tower Bridge and London Eye tonight".split()
    found = texts(tokens)
    assert "Tower Bridge" in found and "London Eye" in found
    assert not any("and" in t.split() for t in found)


def test_determiners_and_pronouns_inside_a_chunk_start_a_new_phrase():
    # TextBlob's NP rule lets a determiner follow a noun: "pilot a Space Shuttle" is one of its chunks.
    found = texts("the first woman to pilot a Space Shuttle".split())
    assert "Space Shuttle" in found and not any("pilot a" in t for t in found)


def test_capitalised_names_the_tagger_missed_are_phrases():
    # TextBlob tags "Wooden" JJ and "Walk" VB: the capitalised run still makes one phrase.
    assert "John Wooden" in texts("We may have lost John Wooden five years ago".split())
    assert any("Hollywood Walk of Fame" in t for t in texts("a star on the Hollywood Walk of Fame !".split()))
    assert "Game of Thrones" in texts("watching Game of Thrones tonight".split())


def test_name_connectors_of_split_tokenisation():
    # Twitter-2017 splits initials, hyphens and apostrophes into tokens of their own.
    tokens = "characters drawn by J . K . Rowling in 1999".split()
    assert "J . K . Rowling" in texts(tokens)
    assert any("Spider - Man" in t for t in texts("the new Spider - Man trailer".split()))
    # A full stop after a long word ends the sentence, not a name.
    runs = capitalised_runs("Washington Capitals . Round two".split(), [WORD] * 5)
    assert (0, 2) in runs and not any(s <= 3 < e and s <= 1 < e for s, e in runs)
    found = texts("watch the #USWNT win the World Cup . #SheBelieves".split())
    assert "World Cup" in found and "#SheBelieves" in found
    assert "St . Sabina Church" in texts("Mass for Peace at St . Sabina Church".split())


def test_number_after_a_name_joins_it():
    assert "iOS 8" in texts("Kiwi for iOS 8 !".split())
    assert "Black Squirrel Festival 2015" in texts("RT @k : Black Squirrel Festival 2015 to be held".split())


def test_hashtags_and_split_hashtags():
    assert "#Bronx River" in texts("drowned in the #Bronx River on Friday".split())
    assert "#Ebola treatment centre" in texts("dressed for #Ebola treatment centre at Lunsar".split())
    tokens = "# NBA : Kawhi Leonard wins the fan vote ! # NBAAwards".split()
    found = texts(tokens)
    assert "NBA" in found and "NBAAwards" in found and "Kawhi Leonard" in found
    assert "#" not in " ".join(found).split()
    assert (1, 2) in [(s, e) for s, e, _ in nps("@ djfive ' s live set".split())]


def test_twitter2017_split_hashtags_and_mentions_join_names():
    # Twitter-2017 writes "#" and "@" as tokens of their own; team names span them.
    assert any("New Orleans # Saints" in t for t in texts("# NFL New Orleans # Saints notes".split()))
    assert "Washington Capitals" in texts("hockey tonight @ Washington Capitals".split())
    assert any(t.endswith("Serie A") for t in texts("the 2015 - 16 Serie A season".split()))


def test_quoted_titles_are_phrases():
    found = texts("Emma Watson in ' Beauty and the Beast ' : first look".split())
    assert "Beauty and the Beast" in found
    assert "Teardrops on My Guitar" in texts('Taylor Swift \' s " Teardrops on My Guitar "'.split())
    # A long or lower-case quote is no title.
    assert not any("said this" in t for t in texts('he said " this is not a title at all , really "'.split()))


def test_hashtag_chains_are_one_phrase_per_tag():
    found = texts("Found dog . #Riverdale #DogsTO #ttot #MyFest2015 http://t.co/x".split())
    assert {"#Riverdale", "#DogsTO", "#ttot", "#MyFest2015"} <= set(found)


def test_handles_stay_out_of_names():
    assert "@WOODTV" in texts("RT @WOODTV RIP Maya Angelou".split())
    assert any(t.endswith("Maya Angelou") for t in texts("RT @WOODTV RIP Maya Angelou".split()))


def test_leading_determiners_trimmed_but_titles_kept():
    assert "black cat" in texts("the black cat sat on the mat".split())
    assert "The Walking Dead" in texts('" The Walking Dead " star arrives'.split())
    # All-caps words that spell function words in lower case are names ("US", "IT").
    assert "US" in texts("has ceded to the US its power".split())


def test_shouting_tweet_is_not_one_phrase():
    tokens = "OMG THIS IS THE BEST DAY OF MY LIFE".split()
    assert capitalised_runs(tokens, token_kinds(tokens)) == []
    assert all(e - s <= 3 for s, e, _ in nps(tokens))


def test_empty_punctuation_emoji_and_long_tweets():
    assert extract_tweet_nps([]).nps == []
    assert nps(["..."]) == [] and nps(["😀"]) == [] and nps(["\xa0"]) == [] and nps(["❤️", "!", "#"]) == []
    long = ("Kawhi Leonard wins at the Tower Bridge http://t.co/x and 😀 " * 30).split()
    assert len(long) == 300
    found = nps(long)
    assert len(found) >= 60 and all(t == " ".join(long[s:e]) for s, e, t in found)


def test_whitespace_token_keeps_the_mapping():
    # Twitter-2015 valid.txt line 9658 holds a lone '\xa0' token.
    tokens = ["rivers", ":", "\xa0", "http://t.co/ndZOUDf7ZT\"", "Tower", "Bridge", "a b", "Park"]
    for s, e, t in nps(tokens):
        assert t == " ".join(tokens[s:e]) and "\xa0" not in t


def test_span_helpers():
    assert merge_overlapping([(3, 5), (0, 2), (4, 7), (1, 2)]) == [(0, 2), (3, 7)]
    tokens = "RT a and b http://x c".split()
    kinds = token_kinds(tokens)
    assert split_at_barriers(tokens, kinds, [(0, 6)]) == [(1, 2), (3, 4), (5, 6)]
    assert trim("the cat".split(), ["DT", "NN"], (0, 2)) == (1, 2)
    assert trim(["it"], ["PRP"], (0, 1)) is None


_token = st.one_of(
    st.sampled_from(["RT", "@jack", "#Tag", "#", "@", "http://t.co/x", "The", "of", "and", "New", "York",
                     "NBA", "2015", ".", "-", "'", "😀", "\xa0", "", "a b", "&amp;", "iOS", "the", "cat"]),
    st.text(min_size=0, max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_token, max_size=40))
def test_any_tweet_maps_back_without_overlap(tokens):
    item = extract_tweet_nps(tokens, imgid="x")
    assert item.tokens == tokens
    prev = 0
    kinds = token_kinds(tokens)
    for np in item.nps:
        assert prev <= np.start < np.end <= len(tokens)
        prev = np.end
        assert np.text == " ".join(tokens[np.start:np.end])
        assert not any(kinds[i] in NEVER_INSIDE for i in range(np.start, np.end))
        # Symbols and a lone "#" only join the words of a name ("Spider - Man", "New Orleans # Saints");
        # a phrase never starts or ends with one.
        assert kinds[np.start] not in (SYMBOL, MARK) and kinds[np.end - 1] not in (SYMBOL, MARK)


def test_refine_works_on_any_backend_output():
    tokens = "RT @jack : the new Tower Bridge http://t.co/x".split()
    kinds = token_kinds(tokens)
    tags = ["NN", "NN", ":", "DT", "JJ", "NNP", "NNP", "NN"]
    # A chunker that ran the whole tweet into one NP.
    assert refine(tokens, kinds, tags, [(0, 8)]) == [(1, 2), (4, 7)]

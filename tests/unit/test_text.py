import pytest

from processors.errors import EmptyTextError, InvalidTextError, TextTooLongError
from processors.synthesis.text import chunk_text, normalise_text, split_sentences

MALAYALAM_TEXT = "നമസ്കാരം, സുഖമാണോ? ഞാൻ നാളെ വൈകുന്നേരം ഏഴു മണിക്ക് വരും."


def test_ssml_like_markup_is_removed_and_its_words_kept():
    text = '<speak><prosody rate="slow">Hello &amp; welcome!</prosody><break time="1s"/> Bye.</speak>'

    assert normalise_text(text) == "Hello & welcome! Bye."


def test_comparisons_are_text_not_markup():
    assert normalise_text("a < b and c > d") == "a < b and c > d"


def test_emoji_and_pictographs_are_dropped():
    assert normalise_text("Great job 👍🏽 team 👨‍👩‍👧 ❤️!") == "Great job team !"


def test_malayalam_spelling_survives_untouched():
    assert normalise_text(MALAYALAM_TEXT) == MALAYALAM_TEXT


@pytest.mark.parametrize("text", ["", "   \n ", "😀🎉", "<speak><break time='2s'/></speak>", "!!! ..."])
def test_nothing_speakable_is_a_named_error(text):
    with pytest.raises(EmptyTextError):
        normalise_text(text)


def test_a_hundred_thousand_characters_is_refused_by_name():
    with pytest.raises(TextTooLongError, match="100,000"):
        normalise_text("word " * 20_000)


def test_text_that_is_not_a_string_is_a_named_error():
    with pytest.raises(InvalidTextError):
        normalise_text(None)


def test_sentences_split_after_their_punctuation_and_keep_closing_quotes():
    assert split_sentences("He said “hi.” Then? Yes! ഞാൻ വരും। Done") == [
        "He said “hi.”",
        "Then?",
        "Yes!",
        "ഞാൻ വരും।",
        "Done",
    ]


def test_long_text_becomes_numbered_chunks_that_keep_every_word():
    text = " ".join(f"Sentence number {index} is here." for index in range(200))

    chunks = chunk_text(text, max_chunk_characters=300)

    assert len(text) > 2000
    assert all(len(chunk.text) <= 300 for chunk in chunks)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert {chunk.count for chunk in chunks} == {len(chunks)}
    assert " ".join(chunk.text for chunk in chunks) == text


def test_chunks_end_at_sentence_ends_when_they_can():
    chunks = chunk_text("First sentence here. Second one follows. Third closes it.", max_chunk_characters=45,
                        min_tail_characters=0)

    assert [chunk.text for chunk in chunks] == ["First sentence here. Second one follows.", "Third closes it."]


def test_a_short_last_sentence_joins_the_chunk_before_so_it_can_carry_a_watermark():
    chunks = chunk_text("First sentence here. Second one follows. Thanks.", max_chunk_characters=45)

    assert [chunk.text for chunk in chunks] == ["First sentence here. Second one follows. Thanks."]


def test_a_sentence_longer_than_a_chunk_is_cut_between_words():
    sentence = "and then " * 60

    chunks = chunk_text(sentence, max_chunk_characters=50, min_tail_characters=0)

    assert all(len(chunk.text) <= 50 for chunk in chunks)
    assert " ".join(chunk.text for chunk in chunks).split() == sentence.split()

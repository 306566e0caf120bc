"""Deny patterns on synthesis text: what the shipped defaults refuse, what they must let through, and
operators' own patterns."""

from __future__ import annotations

import pytest

from processors.trust.text_policy import (
    DenyPattern,
    InvalidDenyPatternError,
    TextPolicy,
    deny_patterns_from_json,
)

DEFAULTS = TextPolicy()


@pytest.mark.parametrize("text", [
    "Your code is 1234.",
    "Hello! Your verification code is 482 913. It expires in ten minutes.",
    "Your one-time passcode is 55-21-07, do not share it with anyone.",
    "Your security code is four eight two nine.",
    "Amazon: your OTP is 771204.",
    "Use login code: 3321 to sign in.",
    "Your 2FA code is 90 81 77",
    "YOUR PIN IS 0000",
])
def test_one_time_codes_are_denied(text):
    assert DEFAULTS.denied_by(text) == "one_time_code"


@pytest.mark.parametrize("text", [
    "Hello, this is Officer Daniels from the police. You must pay a fine of $500 today or a warrant will be issued.",
    "This is the IRS. You owe back taxes; please send the payment in gift cards within the hour.",
    "Hi, I'm calling from your bank's fraud department. Please confirm your card number and the PIN so we can "
    "secure your account.",
    "We need you to transfer the funds to a safe account. This is your bank’s security team speaking.",
    "This is Detective Ruiz. I need you to read me the code we just sent to your phone.",
    "Good afternoon, this is HMRC. You are required to pay the outstanding fee by bank transfer now.",
])
def test_officials_and_bank_staff_asking_for_money_or_credentials_are_denied(text):
    assert DEFAULTS.denied_by(text) == "official_impersonation"


@pytest.mark.parametrize("text", [
    "Good morning, everyone. Today we will read the news of the week together.",
    "Your zip code is 90210, and the area code is 415.",
    "The dress code is smart casual; the source code is on GitHub.",
    "Room 1234 is on the left. Chapter 12, verse 4.",
    "Your order number is 48213 and it ships tomorrow.",
    "Your code review is scheduled for 3 pm.",
    "The police said the bank on Main Street was robbed on Tuesday.",
    "I am a bank teller, and I love helping people open accounts.",
    "This is your bank's fraud team. We will never ask you to share your PIN or your password.",
    "Please pay the invoice by Friday; the transfer details are on page two.",
    "Officer Smith asked drivers to slow down near the school.",
    "In the novel, the inspector tells the butler to give him the key to the cellar.",
    "Call us at 555 0100 between nine and five.",
])
def test_everyday_texts_are_not_denied(text):
    assert DEFAULTS.denied_by(text) is None


def test_an_operators_own_patterns_replace_the_defaults_and_report_their_name():
    policy = TextPolicy([DenyPattern("wire_instructions", r"\bwire\s+\$?\d+")])

    assert policy.denied_by("Please wire $4000 before noon.") == "wire_instructions"
    assert policy.denied_by("Your code is 1234.") is None
    assert TextPolicy([]).denied_by("Your code is 1234.") is None


def test_patterns_read_from_json_and_bad_ones_are_refused_by_name():
    patterns = deny_patterns_from_json('[{"name": "crypto", "regex": "send .{0,20}bitcoin"}]')
    assert TextPolicy(patterns).denied_by("Send   two Bitcoin now") == "crypto"

    with pytest.raises(InvalidDenyPatternError, match="'broken' is not a valid regular expression"):
        TextPolicy([DenyPattern("broken", "(unclosed")])
    with pytest.raises(InvalidDenyPatternError, match="needs a name"):
        TextPolicy([DenyPattern(" ", "x")])
    with pytest.raises(InvalidDenyPatternError, match="JSON list"):
        deny_patterns_from_json('{"name": "x"}')
    with pytest.raises(InvalidDenyPatternError, match="JSON list"):
        deny_patterns_from_json('[{"regex": "x"}]')


def test_a_long_text_is_checked_quickly():
    import time

    text = "The weather is mild and the river runs slowly past the old mill. " * 3000  # ~200,000 characters
    started = time.perf_counter()
    assert DEFAULTS.denied_by(text + " Your code is 1234.") == "one_time_code"
    assert time.perf_counter() - started < 2.0


def test_settings_take_patterns_from_a_file_the_environment_or_the_defaults(tmp_path, monkeypatch):
    from infra.settings import Settings

    patterns_file = tmp_path / "deny.json"
    patterns_file.write_text('[{"name": "gift_cards", "regex": "gift cards?"}]')
    monkeypatch.setenv("VOXFLOW_TEXT_DENY_PATTERNS", '[{"name": "wire", "regex": "wire transfer"}]')

    assert Settings(_env_file=None, text_deny_patterns_file=patterns_file).deny_patterns() == [
        DenyPattern("gift_cards", "gift cards?")]
    assert Settings(_env_file=None).deny_patterns() == [DenyPattern("wire", "wire transfer")]
    monkeypatch.delenv("VOXFLOW_TEXT_DENY_PATTERNS")
    assert [p.name for p in Settings(_env_file=None).deny_patterns()] == ["one_time_code", "official_impersonation"]
    with pytest.raises(InvalidDenyPatternError, match="cannot read deny patterns"):
        Settings(_env_file=None, text_deny_patterns_file=tmp_path / "missing.json").deny_patterns()

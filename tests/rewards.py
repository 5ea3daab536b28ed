"""Rewards a tiny random model can earn, for tests that need rewards to vary (loaded by `limr.py --reward`)."""


def digit_share(responses: list[str], answers: list[str], truncated: list[bool]) -> list[float]:
    """The share of the response's characters that are digits: learnable in a few steps."""
    return [sum(c.isdigit() for c in r) / max(len(r), 1) for r in responses]


def has_digit(responses: list[str], answers: list[str], truncated: list[bool]) -> list[float]:
    """+1 if the response has a digit, else -0.5: accuracies vary by prompt, so LIM has something to rank."""
    return [1.0 if any(c.isdigit() for c in r) else -0.5 for r in responses]


def graded_length(responses: list[str], answers: list[str], truncated: list[bool]) -> list[float]:
    """reward.py's graders on answers that are always right (the response length, boxed): every item scores +1 when
    a grader answers, and -0.5 when a grader was killed or timed out, so a lost grade shows."""
    import reward

    return reward.rewards([f"The answer is \\boxed{{{len(r)}}}." for r in responses], [str(len(r)) for r in responses])

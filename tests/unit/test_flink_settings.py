"""Flink settings of every job: --flink-conf overrides win over the defaults and the job's own."""

from __future__ import annotations

import argparse

import pytest

from vigil.flink_env import FlinkSettings, _job_config


def _settings(*argv: str) -> FlinkSettings:
    parser = argparse.ArgumentParser()
    FlinkSettings.add_arguments(parser)
    return FlinkSettings.from_parsed(parser.parse_args(list(argv)), bounded=False)


def test_flink_conf_wins_over_defaults_and_the_jobs_own_options():
    settings = _settings("--flink-conf", "execution.buffer-timeout.interval = 7 ms",
                         "--flink-conf", "execution.checkpointing.interval=10 s")
    conf = _job_config(settings, "vigil-test", {"execution.buffer-timeout.interval": "5 ms"})
    assert conf["execution.buffer-timeout.interval"] == "7 ms"
    assert conf["execution.checkpointing.interval"] == "10 s"
    assert _job_config(_settings(), "vigil-test", {"execution.buffer-timeout.interval": "5 ms"})[
        "execution.buffer-timeout.interval"] == "5 ms"


@pytest.mark.parametrize("option", ["no-equals-sign", "=value"])
def test_a_malformed_flink_conf_option_is_refused_with_its_text(option):
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        _job_config(_settings("--flink-conf", option), "vigil-test", None)


def test_the_fast_job_bounds_its_processing_time_state_by_a_day_and_an_hour():
    """The fast job's features are in processing time: its TTL is what they need (25 h), not the
    exact job's 30-day --history-ttl backstop (ADR 0007 section 9)."""
    from jobs.fraud_config import FAST_STATE_TTL, FraudConfig

    assert FraudConfig.from_args(["--paths", "fast", "--history-ttl", "30 d"]).state_ttl == FAST_STATE_TTL == "25 h"
    assert FraudConfig.from_args(["--paths", "exact", "--history-ttl", "7 d"]).state_ttl == "7 d"
    assert FraudConfig.from_args([]).state_ttl == FraudConfig().history_ttl

"""Ctrl-C and kill during training (comipn_model.training.signals): the first signal becomes a request the
loop acts on at its next step; a second one has its usual effect; the handlers are put back afterwards."""

from __future__ import annotations

import signal

import pytest

from comipn_model.training.signals import StopRequests, exit_code


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_becomes_a_request_and_the_handlers_are_put_back(signum):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopRequests() as stop:
        assert not stop.requested
        signal.raise_signal(signum)  # no KeyboardInterrupt, no exit: noted
        assert stop.requested and stop.signum == signum
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_second_ctrl_c_interrupts_at_once():
    # Start from Python's own SIGINT handler: in the full suite something earlier leaves another one (the
    # test failed there twice, never alone), and StopRequests hands the second signal to the previous one.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with StopRequests() as stop:
                signal.raise_signal(signal.SIGINT)
                assert stop.signum == signal.SIGINT
                signal.raise_signal(signal.SIGINT)  # the user insists: Python's own handler again
                pytest.fail("the second SIGINT was swallowed")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_exit_codes_are_128_plus_the_signal_as_shells_report():
    assert (exit_code(signal.SIGINT), exit_code(signal.SIGTERM), exit_code(signal.SIGHUP)) == (130, 143, 129)

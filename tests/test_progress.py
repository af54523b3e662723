import io

from spikevae.progress import Reporter


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bars_on_a_terminal_show_progress_and_postfix():
    out = Terminal()
    rep = Reporter(stream=out)
    with rep.bar("read+filter+detect", 20.0, unit="s", scale=1 / 30_000) as up:
        for _ in range(10):
            up(60_000)
    with rep.bar("train β-VAE", 3, unit="step") as up:
        for _ in range(3):
            up(1, loss=12.5, C=3.0)
    text = out.getvalue()
    assert "read+filter+detect" in text and "20.0/20.0" in text
    assert "3.00/3.00" in text and "loss=12.5" in text


def test_plain_lines_off_a_terminal_and_silence_when_quiet():
    out = io.StringIO()
    with Reporter(stream=out).bar("cluster", 4, unit="electrode") as up:
        up(4)
    assert out.getvalue().splitlines()[0] == "cluster ..." and "done in" in out.getvalue()
    quiet = io.StringIO()
    with Reporter(quiet=True, stream=quiet).bar("cluster", 4) as up:
        up(4)
    assert quiet.getvalue() == ""


def test_periodic_lines_off_a_terminal_for_logs_of_long_steps():
    out = io.StringIO()
    with Reporter(stream=out, interval_s=0.0).bar("train β-VAE", 4, unit="step") as up:
        for _ in range(4):
            up(1, loss=12.5)
    lines = out.getvalue().splitlines()
    assert lines[0] == "train β-VAE ..." and "done in" in lines[-1]
    assert lines[2].startswith("train β-VAE: 2/4 step (50%) after ") and lines[2].endswith("loss=12.5")
    assert "s left" in lines[2]

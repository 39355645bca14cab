"""History.plot and `python -m fastbp demo --plot` render real images."""
import subprocess
import sys

import numpy as np
import pytest

import fastbp

pytest.importorskip("matplotlib")


def trained_history():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    model = fastbp.MLP((3, 8, 1), "tanh", "mse", seed=0)
    return model.fit(X, y, epochs=6, batch_size=16, seed=0, validation_data=(X[:16], y[:16]),
                     scheduler=lambda opt: fastbp.schedules.StepLR(opt, step_size=2, gamma=0.5))


def test_history_plot_draws_loss_val_loss_and_lr(tmp_path):
    history = trained_history()
    path = tmp_path / "history.png"
    fig = history.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5000
    loss_ax, lr_ax = fig.axes
    curves = {line.get_label(): line.get_ydata() for line in loss_ax.get_lines() + lr_ax.get_lines()}
    np.testing.assert_array_equal(curves["training loss"], history.loss)
    np.testing.assert_array_equal(curves["validation loss"], history.val_loss)
    np.testing.assert_array_equal(curves["learning rate"], history.lr)
    assert history.lr == [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4]


def test_history_plot_on_given_axes_and_empty_history():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    fig = trained_history().plot(ax=ax)
    assert fig is ax.figure and len(ax.get_lines()) == 2
    with pytest.raises(ValueError, match="empty"):
        fastbp.History().plot()


@pytest.mark.packaging
def test_demo_plot_option_writes_png(tmp_path):
    path = tmp_path / "demo.png"
    done = subprocess.run([sys.executable, "-m", "fastbp", "demo", "--no-progress", "--plot",
                           str(path)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)  # not the checkout: -m would import the source tree
    assert done.returncode == 0, done.stderr
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert "curves saved to" in done.stdout

r"""The trained model experiments 2 and 3 look at: a VAE on the digits protocol.

The digits protocol (the bundled 8 x 8 digits, 1500 training / 297 test images, training batches
binarised dynamically, the test set binarised once with seed 123; encoder 64-100-100-10, decoder
mirrored, tanh, Adam 1e-3, batch 20) at a number of epochs the experiment chooses. The model runs
on the ``numpy`` backend: these networks are small, and the Numba kernels would first have to
compile (seconds to a minute on a busy machine) for no gain here.
"""

from scratchdgm.data import load_digits_protocol
from scratchdgm.models.deep import VAE
from scratchdgm.progress import progress

__all__ = ["trained_digits_vae"]


def trained_digits_vae(epochs, seed=0, latent_dim=10):
    r"""A :class:`~scratchdgm.VAE` trained for ``epochs`` epochs on the digits protocol, and the
    :class:`~scratchdgm.data.Dataset`.

    Returns
    -------
    model : VAE
    dataset : Dataset
        ``x_test_binary`` is the test set the experiments evaluate on.
    """
    ds = load_digits_protocol()
    model = VAE(ds.x_train.shape[1], latent_dim, (100, 100), random_state=seed, backend="numpy")
    bar = progress(total=epochs, desc="training the VAE", unit="epoch")
    model.fit(ds.x_train, epochs=epochs, progress=False, random_state=seed,
              callback=lambda epoch, record: bar.update(1))
    bar.close()
    return model, ds

"""Quality guard on a short digits run (docs/protocols.md protocol, fewer epochs): IWAE trained on L_50
reaches a higher importance-sampled test log-likelihood than a VAE trained on L_1, as in Burda et
al. (2016), Table 1. A paired one-sided z-test over test points, for two training seeds."""

import math

import pytest

import scratchdgm as sd
from scratchdgm.cli.train import load_data

EPOCHS = 12


@pytest.mark.slow
def test_iwae50_beats_vae_on_short_digits_run():
    ds = load_data("digits")
    x_train, x_test = ds["x_train"], ds["x_test"]
    zs = []
    for seed in (0, 1):
        ll = {}
        for name, cls, k in (("vae", sd.VAE, 1), ("iwae", sd.IWAE, 50)):
            model = cls(64, 10, (100, 100), k=k, random_state=seed)
            model.fit(x_train, epochs=EPOCHS, progress=False, random_state=seed)
            ll[name] = model.score_samples(x_test, k=1000, random_state=seed + 10)
        d = ll["iwae"] - ll["vae"]
        zs.append(d.mean() / (d.std(ddof=1) / math.sqrt(len(d))))
    # each seed: IWAE better with z > 2; the two together: z > 3 (Stouffer)
    assert min(zs) > 2.0, zs
    assert sum(zs) / math.sqrt(len(zs)) > 3.0, zs

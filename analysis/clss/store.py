"""Read CLSS probe sets from HDF5 (layout in SCHEMA.md), measuring kappa_eff where member rewards are stored."""

import h5py

from analysis.hdf5 import open_file

from . import Probe
from .kappa import step_noise


def _measured(node, alpha, sigma):
    """(alpha_eff, kappa_eff), each (R, T), from a subgroup's member rewards; (None, None) without them."""
    if "member_rewards" not in node:
        return None, None
    attrs = node.attrs
    baseline = node["baseline_rewards"][()] if "baseline_rewards" in node else None
    if bool(attrs.get("baseline", baseline is not None)) and baseline is None:
        raise KeyError(f"{node.name}: attribute baseline is true but there is no baseline_rewards dataset")
    return step_noise(node["member_rewards"][()], alpha, sigma, str(attrs["shaping"]), str(attrs["update_form"]),
                      baseline)


def read_hdf5(path, group="clss"):
    """Load probes from an HDF5 file laid out as in SCHEMA.md; returns {alpha: [Probe, ...]}."""
    probes = {}
    with open_file(path) as f:
        for node in f[group].values():
            if not isinstance(node, h5py.Group):
                continue
            alpha, sigma = float(node.attrs["alpha"]), float(node.attrs["sigma"])
            distance = node["distance"][()] if "distance" in node else None
            alpha_eff, kappa_eff = _measured(node, alpha, sigma)
            probe = Probe(int(node.attrs["population"]), sigma, node["rewards"][()], distance, alpha_eff, kappa_eff)
            probes.setdefault(alpha, []).append(probe)
    return probes

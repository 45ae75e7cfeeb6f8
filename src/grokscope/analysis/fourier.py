"""Fourier analysis on Z_p: basis, spectra of embeddings, key frequencies, sparsity, neurons, logits.

Conventions (Nanda et al. 2023): the orthonormal basis of R^p has rows 1/sqrt(p), then for
k = 1..(p-1)//2 the unit vectors cos(w_k x) and sin(w_k x) with w_k = 2 pi k / p (and, for even p,
the Nyquist row cos(pi x)). A frequency's norm in a matrix W (p, d) whose rows are indexed by the
value x is sqrt(|F_cos_k W|^2 + |F_sin_k W|^2).
"""

from __future__ import annotations

import math

import torch


def n_frequencies(p: int) -> int:
    """Number of non-constant frequencies with a cos and a sin row: (p - 1) // 2."""
    return (p - 1) // 2


def fourier_basis(p: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, list[str]]:
    """Orthonormal Fourier basis of R^p as rows (p, p) and their names ('const', 'cos 1', 'sin 1', ...)."""
    x = torch.arange(p, dtype=torch.float64)
    rows, names = [torch.ones(p, dtype=torch.float64)], ["const"]
    for k in range(1, n_frequencies(p) + 1):
        w = 2 * math.pi * k / p
        rows += [torch.cos(w * x), torch.sin(w * x)]
        names += [f"cos {k}", f"sin {k}"]
    if p % 2 == 0:
        rows.append(torch.cos(math.pi * x))
        names.append(f"cos {p // 2}")
    F = torch.stack(rows)  # (p, p)
    return (F / F.norm(dim=1, keepdim=True)).to(dtype), names


def frequency_norms(W: torch.Tensor, p: int) -> torch.Tensor:
    """Per-frequency norms (n_frequencies(p),) of W (p, d), rows indexed by value; frequency k at index k-1.

    The constant component is left out (it carries no information about x).
    """
    F, _ = fourier_basis(p)
    C = F @ W.detach().to(torch.float64).cpu()  # (p, d) coefficients
    K = n_frequencies(p)
    sq = C[1 : 1 + 2 * K].pow(2).sum(dim=1).reshape(K, 2).sum(dim=1)  # (K,)
    return sq.sqrt()


def gini(values: torch.Tensor) -> float:
    """Gini coefficient of non-negative values: 0 when all equal, (n-1)/n for a single non-zero."""
    c = torch.sort(values.detach().to(torch.float64).flatten().abs()).values
    n, total = c.numel(), float(c.sum())
    if n == 0 or total == 0:
        return 0.0
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(((2 * i - n - 1) * c).sum() / (n * total))


def ipr(values: torch.Tensor, r: int = 2) -> float:
    """Inverse participation ratio sum_k (|v_k| / |v|_2)^(2r): 1 for a one-hot vector, 1/n^(r-1) for flat."""
    v = values.detach().to(torch.float64).flatten().abs()
    norm = float(v.norm())
    return 0.0 if norm == 0 else float((v / norm).pow(2 * r).sum())


def top_mass(norms: torch.Tensor, k: int) -> float:
    """Fraction of the squared norm held by the k largest frequencies."""
    sq = norms.to(torch.float64).pow(2)
    total = float(sq.sum())
    return 0.0 if total == 0 else float(torch.topk(sq, min(k, sq.numel())).values.sum() / total)


def key_frequencies(
    norms: torch.Tensor, *, max_keys: int | None = None, min_gap: float = 4.0
) -> tuple[list[int], float]:
    """Frequencies (1-based) above the largest drop in the sorted squared spectrum, and that drop's ratio.

    Sort the squared norms in decreasing order and cut where consecutive values fall by the
    largest factor (searching the first `max_keys` cuts, default half the frequencies). A sparse
    spectrum has one large drop after its key frequencies; a dense (e.g. untrained) one has none:
    if the best ratio is below `min_gap`, no key frequencies are returned.
    """
    sq = norms.detach().to(torch.float64).pow(2)
    n = sq.numel()
    if n < 2 or float(sq.max()) == 0:
        return [], 1.0
    order = torch.argsort(sq, descending=True)
    s = sq[order]
    limit = min(max_keys or max(n // 2, 1), n - 1)
    tiny = float(s[0]) * 1e-30
    ratios = s[:limit] / (s[1 : limit + 1] + tiny)  # drop after position i
    cut = int(torch.argmax(ratios))
    ratio = float(ratios[cut])
    if ratio < min_gap:
        return [], ratio
    return sorted(int(k) + 1 for k in order[: cut + 1]), ratio


def spectrum_stats(norms: torch.Tensor) -> dict:
    """Summary numbers of a frequency spectrum: Gini, IPR, key frequencies, mass in the top 5 / 8."""
    keys, gap = key_frequencies(norms)
    sq = norms.to(torch.float64).pow(2)
    total = float(sq.sum())
    key_mass = float(sq[[k - 1 for k in keys]].sum() / total) if keys and total else 0.0
    return {
        "gini": gini(norms),
        "ipr": ipr(norms),
        "key_freqs": keys,
        "key_gap": gap,
        "key_mass": key_mass,
        "top5_mass": top_mass(norms, 5),
        "top8_mass": top_mass(norms, 8),
    }


def neuron_frequencies(acts: torch.Tensor, p: int, *, threshold: float = 0.85) -> dict:
    """Each neuron's dominant frequency from its activations over the (x, y) grid.

    acts: (p, p, n_neurons), indexed [x, y]. The activations are centred, transformed with the
    2-D Fourier basis, and for each frequency k the fraction of a neuron's variance in the span
    of polynomials of degree <= 2 in cos/sin(w_k x) and cos/sin(w_k y) is measured: the
    components {const, cos k, sin k} x {const, cos k, sin k} (linear terms and the products) plus
    frequency 2k in x alone and in y alone (from cos^2, sin^2 and cos*sin). Returns 'freq' (n,)
    the 1-based dominant frequency, 'frac' (n,) the fraction it explains, and 'clusters'
    {k: count of neurons with frac >= threshold} plus the count of the rest under 'noise'.
    """
    A = acts.detach().to(torch.float32).cpu()
    A = A - A.mean(dim=(0, 1), keepdim=True)
    F, _ = fourier_basis(p, torch.float32)
    n = A.shape[-1]
    C = (F @ A.reshape(p, p * n)).reshape(p, p, n)  # transform over x (float32 keeps this fast)
    C = torch.matmul(F, C)  # and over y (batched over x rows): (p, p, n) 2-D coefficients
    # energies grouped by (frequency of the x row, frequency of the y column): G (f_x, f_y, n)
    K = n_frequencies(p)
    Q = C * C  # float32 energies; grouped sums are small (p / 2 + 1 squared cells), then float64

    def by_freq(T: torch.Tensor) -> torch.Tensor:  # sum the cos/sin rows of dim 0 per frequency
        pairs = T[1 : 1 + 2 * K].reshape(K, 2, *T.shape[1:]).sum(dim=1)
        return torch.cat([T[:1], pairs, T[1 + 2 * K :]])  # const, 1..K, Nyquist (even p)

    G = by_freq(by_freq(Q).transpose(0, 1)).transpose(0, 1).to(torch.float64)
    total = G.sum(dim=(0, 1)).clamp_min(1e-300)  # (n,)
    ks = torch.arange(1, K + 1)
    # {const, cos k, sin k} x {const, cos k, sin k} without (const, const), plus frequency 2k in x
    # alone and in y alone (from cos^2, sin^2 and cos*sin), folded into 1..K
    block = G[ks, 0] + G[0, ks] + G[ks, ks]  # (K, n)
    k2 = torch.where(2 * ks <= K, 2 * ks, p - 2 * ks)
    ok = (k2 >= 1) & (k2 <= K) & (k2 != ks)
    k2 = k2.clamp(1, K)
    block = block + torch.where(ok[:, None], G[k2, 0] + G[0, k2], torch.zeros_like(block))
    fr = block / total  # (K, n)
    best, arg = fr.max(dim=0)
    freq = arg + 1
    clusters: dict[str, int] = {}
    for f, b in zip(freq.tolist(), best.tolist()):
        key = str(f) if b >= threshold else "noise"
        clusters[key] = clusters.get(key, 0) + 1
    return {"freq": freq, "frac": best, "clusters": clusters}


def logit_frequency_coefficients(logits: torch.Tensor, p: int, *, sign: int = 1) -> torch.Tensor:
    """Coefficients c_k (n_frequencies(p),) of logits on cos(w_k(x + sign*y - z)).

    logits: (p, p, p) indexed [x, y, z]. c_k = <L, T_k> / <T_k, T_k> with T_k the cos tensor, so
    L = sum_k c_k T_k + (the rest); for Nanda's algorithm the c_k of key frequencies are large.
    """
    L = logits.detach().to(torch.float64).cpu()
    # sum_{x,y,z} L cos(w_k(x + sign*y - z)) = Re sum_{x,y} e^{i w_k (x + sign*y)} sum_z L e^{-i w_k z}
    ks = torch.arange(1, n_frequencies(p) + 1)
    v = torch.arange(p, dtype=torch.float64)
    w = 2 * math.pi * ks.to(torch.float64) / p  # (K,)
    ang = w[None, :] * v[:, None]  # (p, K): w_k z
    Lf = L.reshape(p * p, p)
    re, im = Lf @ torch.cos(ang), -(Lf @ torch.sin(ang))  # sum_z L e^{-i w_k z}: (p*p, K) each
    phase = w[None, None, :] * (v[:, None, None] + sign * v[None, :, None])  # (p, p, K)
    num = (re.reshape(p, p, -1) * torch.cos(phase) - im.reshape(p, p, -1) * torch.sin(phase)).sum(dim=(0, 1))
    # |T_k|^2 = sum cos^2(w_k m) = p^3/2 for every p: the cos(2 w_k m) half sums to 0 since 2k < p
    return num / (p**3 / 2)

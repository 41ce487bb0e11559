"""Chapter 04's exercise checkers accept the worked solutions and reject typical wrong answers."""

import math

import torch

from ddpm_utils import exercises


def resblock_parameters(in_ch, out_ch, emb_dim, scale_shift):
    width = 2 * out_ch if scale_shift else out_ch
    skip = in_ch * out_ch + out_ch if in_ch != out_ch else 0
    convs = 9 * in_ch * out_ch + out_ch + 9 * out_ch**2 + out_ch
    return 2 * in_ch + 2 * out_ch + convs + emb_dim * width + width + skip


def multihead_attention(x, w_q, w_k, w_v, heads, scale=True):
    b, c, h, w = x.shape
    d = c // heads
    flat = x.reshape(b, c, h * w)
    q, k, v = (wt @ flat for wt in (w_q, w_k, w_v))
    out = torch.zeros_like(flat)
    for hd in range(heads):
        ch = slice(hd * d, (hd + 1) * d)
        scores = q[:, ch].transpose(1, 2) @ k[:, ch] / (math.sqrt(d) if scale else 1.0)
        out[:, ch] = (torch.softmax(scores, dim=-1) @ v[:, ch].transpose(1, 2)).transpose(1, 2)
    return out.reshape(b, c, h, w)


def test_04_1_resblock_count():
    assert exercises.check("04.1", None) is False
    assert exercises.check("04.1", resblock_parameters) is True

    def no_skip(i, o, e, s):  # forgets the 1x1 projection
        return resblock_parameters(i, o, e, s) - (i * o + o if i != o else 0)

    def no_scale_shift(i, o, e, s):  # counts the additive embedding only
        return resblock_parameters(i, o, e, False)

    assert exercises.check("04.1", no_skip) is False
    assert exercises.check("04.1", no_scale_shift) is False
    assert exercises.check("04.1", 12345) is False


def test_04_2_multihead_attention():
    assert exercises.check("04.2", None) is False
    assert exercises.check("04.2", multihead_attention) is True
    assert exercises.check("04.2", lambda *a: multihead_attention(*a, scale=False)) is False
    assert exercises.check("04.2", lambda x, q, k, v, heads: multihead_attention(x, q, k, v, 1)) is False  # one head

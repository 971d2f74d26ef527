"""ConvAxis: how torch's symmetric padding serves an asymmetric one, against explicit padding in float64."""

import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from geoconv.ops._common import ConvAxis

axes = st.builds(
    ConvAxis,
    size=st.integers(4, 20),
    before=st.integers(0, 3),
    after=st.integers(0, 3),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
)


@settings(max_examples=200, deadline=None)
@given(axis=axes)
def test_conv_axis_matches_explicit_padding(axis: ConvAxis) -> None:
    assume(axis.out >= 1)
    gen = torch.Generator().manual_seed(axis.size * 31 + axis.kernel)
    x = torch.randn(1, 2, axis.size, dtype=torch.float64, generator=gen)
    w = torch.randn(3, 2, axis.kernel, dtype=torch.float64, generator=gen)
    s, d = axis.stride, axis.dilation
    reference = F.conv1d(F.pad(x, (axis.before, axis.after)), w, None, s, 0, d)[..., : axis.out]
    torch_side = F.conv1d(x, w, None, s, axis.pad, d)
    assert torch_side.shape[-1] == axis.torch_out
    torch.testing.assert_close(torch_side[..., axis.skip : axis.skip + axis.out], reference, rtol=0, atol=1e-12)

    # The transposed conv is the adjoint: conv_transpose over the padded axis, then its interior.
    assume(axis.tpad >= 0 and axis.tout >= axis.crop + axis.size and axis.extra < max(s, d))
    y = torch.randn(1, 3, axis.out, dtype=torch.float64, generator=gen)
    full = F.conv_transpose1d(y, w, None, s, 0, 0, 1, d)  # the padded axis, extent pixels
    expected = F.pad(full, (0, max(0, axis.before + axis.size - full.shape[-1])))[..., axis.before :][..., : axis.size]
    led = F.pad(y, (axis.lead, 0))
    got = F.conv_transpose1d(led, w, None, s, axis.tpad, axis.extra, 1, d)
    assert got.shape[-1] == axis.tout
    torch.testing.assert_close(got[..., axis.crop : axis.crop + axis.size], expected, rtol=0, atol=1e-12)
    if axis.texact:
        assert axis.crop == 0 and axis.tout == axis.size


def test_lead_replaces_padding_zero_at_stride_two() -> None:
    """TensorFlow's "same" at stride 2 (padding (0, 1)): one zero input pixel, torch padding 2, nothing cropped."""
    axis = ConvAxis(64, 0, 1, 3, 2, 1)
    assert (axis.lead, axis.tpad, axis.extra, axis.tout, axis.crop, axis.texact) == (1, 2, 1, 64, 0, True)

"""visarch.hooks.recording keeps what the modules return (checked by running them one by one), leaves
the network's result alone and removes its hooks, also when the forward pass fails."""

import pytest
import torch
from torch import nn

from visarch.hooks import recording


def network():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2), nn.Flatten())


def test_the_outputs_are_those_of_the_modules_run_one_by_one():
    model, x = network(), torch.randn(3, 2, 9, 9)
    with recording({"first": model[0], "convolutions": [model[2], model[0]], "last": [model[3]]}) as outputs:
        y = model(x)
    by_hand = [x]
    for module in model:
        by_hand.append(module(by_hand[-1]))
    assert torch.equal(y, by_hand[-1])  # the hooks change nothing
    assert [torch.equal(a, b) for a, b in zip(outputs["first"], [by_hand[1]], strict=True)] == [True]
    # a group keeps the order in which its modules run, not the order in which it lists them
    assert len(outputs["convolutions"]) == 2
    assert torch.equal(outputs["convolutions"][0], by_hand[1]) and torch.equal(outputs["convolutions"][1], by_hand[3])
    assert torch.equal(outputs["last"][0], by_hand[4])


def test_a_module_called_twice_is_kept_twice_and_the_hooks_go_afterwards():
    layer = nn.Linear(3, 3)
    x = torch.randn(2, 3)
    with recording({"layer": layer}) as outputs:
        layer(layer(x))
    assert len(outputs["layer"]) == 2 and torch.equal(outputs["layer"][1], layer(outputs["layer"][0]))
    assert not layer._forward_hooks
    layer(x)
    assert len(outputs["layer"]) == 2  # nothing is recorded after the block


def test_the_hooks_go_when_the_forward_pass_fails():
    model = network()
    with pytest.raises(RuntimeError), recording({"all": list(model)}):
        model(torch.randn(1, 3, 9, 9))  # 3 channels where the first convolution takes 2
    assert not any(m._forward_hooks for m in model)


def test_it_works_on_the_meta_device():
    with torch.device("meta"):
        model = network()
    with recording({"conv": model[2]}) as outputs:
        model(torch.empty(5, 2, 9, 9, device="meta"))
    assert outputs["conv"][0].shape == (5, 6, 4, 4)


@pytest.mark.parametrize("modules, match", [
    ([nn.ReLU()], "modules must be a mapping of names to modules, got list"),
    ({"a": "relu"}, r"modules\['a'\] must be an nn.Module or a list of them, got 'relu'"),
    ({"a": [nn.ReLU(), 3]}, r"modules\['a'\] must be an nn.Module or a list of them"),
])
def test_bad_input(modules, match):
    with pytest.raises(TypeError, match=match), recording(modules):
        pass

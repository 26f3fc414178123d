import pytest

from nc_keras.train import TrainConfig, learning_rate_schedule


def test_paper_schedule_divides_by_ten_every_forty_epochs():
    schedule = learning_rate_schedule(TrainConfig(learning_rate=0.05))
    assert [schedule(e) for e in (0, 39, 40, 79, 80, 199)] == pytest.approx(
        [0.05, 0.05, 0.005, 0.005, 0.0005, 0.05 * 1e-4]
    )
    assert learning_rate_schedule(TrainConfig(learning_rate=0.1, lr_drop_every=0))(100) == 0.1


def test_per_optimizer_defaults_are_the_papers():
    assert (TrainConfig(optimizer="sgd").resolved().learning_rate,
            TrainConfig(optimizer="sgd").resolved().batch_size) == (0.05, 128)
    assert (TrainConfig(optimizer="adam").resolved().learning_rate,
            TrainConfig(optimizer="adam").resolved().batch_size) == (1e-3, 64)
    assert (TrainConfig(optimizer="lbfgs").resolved().learning_rate,
            TrainConfig(optimizer="lbfgs").resolved().batch_size) == (0.1, 2048)


def test_resolved_fills_the_label_and_lambda_h_and_checks_fields():
    config = TrainConfig(output_dir="runs/abc", weight_decay=1e-3).resolved()
    assert (config.label, config.lambda_h) == ("abc", 1e-3)
    with pytest.raises(ValueError, match="model must be one of"):
        TrainConfig(model="vgg").resolved()
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        TrainConfig(epochs=0).resolved()
    with pytest.raises(ValueError, match="lr_drop_every must be >= 0"):
        TrainConfig(lr_drop_every=-1).resolved()


def test_auto_stem_follows_the_input_size():
    from nc_keras.train.config import stem_for

    assert TrainConfig(dataset="mnist_subset", model="resnet18", stem="auto").resolved().stem == "cifar"
    assert TrainConfig(dataset="stl10", model="resnet50", stem="auto").resolved().stem == "cifar"  # 96x96
    assert TrainConfig(dataset="imagenet", model="resnet18", stem="auto").resolved().stem == "imagenet"
    assert TrainConfig(dataset="imagenet", model="mlp", stem="auto").resolved().stem is None
    assert TrainConfig(dataset="cifar10").resolved().stem == "imagenet"  # the paper's default, Sec. 4.1
    assert [stem_for((n, n, 3)) for n in (32, 127, 128, 224)] == ["cifar", "cifar", "imagenet", "imagenet"]

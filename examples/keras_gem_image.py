"""A small Keras 3 image classifier with GeM pooling (poolkit.keras) on scikit-learn's digits.

    KERAS_BACKEND=jax python examples/keras_gem_image.py --pool gem

The 1,797 8x8 handwritten digits ship with scikit-learn (``load_digits``); a fixed stratified
80/20 split (seed 0); the script prints the test accuracy.
"""

from __future__ import annotations

import argparse

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import poolkit.keras as pk


def conv_net(pool="gem", **pool_args):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = pk.create_pool(pool, **pool_args)(x)  # global: (N, 64 * feat_mult)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default="gem", help="a poolkit pool name (gem, avg, max...)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.2, stratify=digits.target, random_state=0)
    model = conv_net(args.pool)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, batch_size=64, epochs=args.epochs, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy ({args.pool}, {len(y_test)} digits): {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()

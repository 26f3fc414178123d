"""tensorflow-datasets: data already prepared, and downloads behind a network probe.

tfds's own downloader retries for minutes when offline, so a download is
tried only after `host_reachable` says the dataset's host answers within a
few seconds. Tests stand in for the network by replacing
`nc_keras.data.download.host_reachable`.
"""

import http.client

import numpy as np

from nc_keras.data.readers import resize_like_pil

PROBE_TIMEOUT_S = 3.0


def builder(name, data_dir):
    """tfds's builder of `name` with `data_dir` (None: tfds's default); None without tfds."""
    try:
        import tensorflow_datasets as tfds

        return tfds.builder(name, data_dir=data_dir)
    except Exception:  # noqa: BLE001 - tfds missing or broken: other sources remain
        return None


def read_prepared(builder, split, image_size):
    """(images uint8 NHWC resized to `image_size`, labels int64) of a prepared split."""
    import tensorflow_datasets as tfds

    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    images, labels = [], []
    for x, y in tfds.as_numpy(dataset.batch(4096)):
        images.append(x)
        labels.append(y)
    images = resize_like_pil(np.concatenate(images), image_size)
    return images, np.concatenate(labels).astype(np.int64)


def host_reachable(host, timeout=PROBE_TIMEOUT_S):
    """True when `host` answers an HTTPS request (any status) within `timeout` s.

    A TLS handshake with certificate checks, not a bare TCP connect: some
    sandboxes accept every connection through a proxy and then go silent.
    """
    connection = http.client.HTTPSConnection(host, timeout=timeout)
    try:
        connection.request("HEAD", "/")
        connection.getresponse()
        return True
    except (OSError, http.client.HTTPException):  # ssl.SSLError is an OSError
        return False
    finally:
        connection.close()

"""tensorflow-datasets: data already prepared, and downloads behind a network probe.

tfds's own downloader retries for minutes when offline, so a download is
tried only after `host_reachable` says the dataset's host answers within a
few seconds. Tests stand in for the network by replacing
`nc_keras.data.download.host_reachable`.

Probing a data dir for prepared data (`builder`, `is_prepared`) makes tfds
log "Variant folder <dir> has no dataset_info.json" on absl's logger for
every version folder it looks at, prepared or not (about 18 per recipe
run); nc_keras probes before it reads local files, so the message says
nothing useful. The probe drops that message only (`_quiet_variant_probe`).
"""

import contextlib
import http.client
import logging

import numpy as np

from nc_keras.data.readers import resize_like_pil

PROBE_TIMEOUT_S = 3.0


def builder(name, data_dir):
    """tfds's builder of `name` with `data_dir` (None: tfds's default); None without tfds."""
    try:
        import tensorflow_datasets as tfds

        with _quiet_variant_probe():
            return tfds.builder(name, data_dir=data_dir)
    except Exception:  # noqa: BLE001 - tfds missing or broken: other sources remain
        return None


def is_prepared(builder):
    """Whether tfds has prepared the builder's dataset in its data dir."""
    with _quiet_variant_probe():
        return builder.is_prepared()


def _not_variant_folder_warning(record):
    """A logging filter: False (drop) for tfds's "Variant folder ... has no ..."."""
    return not (isinstance(record.msg, str) and record.msg.startswith("Variant folder ") and " has no " in record.msg)


@contextlib.contextmanager
def _quiet_variant_probe():
    """Drop tfds's "Variant folder ... has no ..." from absl's logger meanwhile."""
    absl_logger = logging.getLogger("absl")
    absl_logger.addFilter(_not_variant_folder_warning)
    try:
        yield
    finally:
        absl_logger.removeFilter(_not_variant_folder_warning)


def prepare_from_manual(name, data_dir, manual_dir):
    """tfds's builder of `name`, prepared into `data_dir` from the files in `manual_dir`.

    What tfds does for datasets it cannot download (ImageNet): no network.
    """
    import tensorflow_datasets as tfds

    built = builder(name, data_dir)
    built.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return built


def read_prepared(builder, split, image_size, label_feature="label", image_feature="image"):
    """(images uint8 NHWC resized to `image_size` (None: as stored), labels int64) of a prepared split."""
    import tensorflow_datasets as tfds

    dataset = builder.as_dataset(split=split, shuffle_files=False)
    images, labels = [], []
    for example in tfds.as_numpy(dataset.batch(4096)):
        images.append(example[image_feature])
        labels.append(example[label_feature])
    images = np.concatenate(images)
    if image_size is not None:
        images = resize_like_pil(images, image_size)
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

"""nc_keras: neural collapse with Keras 3."""

__version__ = "0.1.0"

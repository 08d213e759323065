"""piposer: a headless pose-estimation appliance for the Raspberry Pi (TFLite PoseNet / BlazePose to MQTT and GPIO)."""

__version__ = "0.1.0"

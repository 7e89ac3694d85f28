from geogit.common.testing import kafka_config, tansu, topics

__all__ = ["kafka_config", "tansu", "topics"]

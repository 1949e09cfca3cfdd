"""The HTTP gateway: MLflow's scoring protocol and the Open Inference Protocol (V2 REST) in
front of the Kafka workers. It holds no model; every request becomes an ordinary modelbus
request through the async client."""

"""The embedded local stack: Tansu broker, MLflow server and the services as child processes.

``modelbus up`` (see ``command.py``) runs it in the foreground; the test fixtures use
``EmbeddedBroker`` and ``EmbeddedMlflow`` directly.
"""

from modelbus.stack.broker import EmbeddedBroker, kafka_api_versions_ok
from modelbus.stack.broker_binary import BrokerBinary, BrokerBinaryError, resolve_broker_binary
from modelbus.stack.errors import PortInUseError, StackError, StartupError
from modelbus.stack.mlflow_server import EmbeddedMlflow, mlflow_healthy
from modelbus.stack.ports import free_tcp_port, port_in_use
from modelbus.stack.process import ChildProcess, descendant_pids, pid_alive
from modelbus.stack.runner import DEFAULT_SERVICES, run_stack

__all__ = [
    "DEFAULT_SERVICES",
    "BrokerBinary",
    "BrokerBinaryError",
    "ChildProcess",
    "EmbeddedBroker",
    "EmbeddedMlflow",
    "PortInUseError",
    "StackError",
    "StartupError",
    "descendant_pids",
    "free_tcp_port",
    "kafka_api_versions_ok",
    "mlflow_healthy",
    "pid_alive",
    "port_in_use",
    "resolve_broker_binary",
    "run_stack",
]

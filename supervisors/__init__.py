"""OTP supervision for pykka actors.

``supervisors`` gives pykka what Erlang/OTP processes have and pykka lacks:
crashes as exits with reasons, links and monitors with death notices delivered as
messages, names that survive restarts, supervisors with ``one_for_one`` /
``one_for_all`` / ``rest_for_one`` strategies and restart intensity, dynamic and
task supervisors, a demand-driven fan-out engine (``fan_out``), ordered shutdown,
kill, and a view of the tree.

Quick start::

    import supervisors as sv

    class Counter(sv.Actor):
        def on_start(self):
            self.n = 0

        def on_receive(self, message):
            if message == "incr":
                self.n += 1
            return self.n

    root = sv.Supervisor.start(
        [sv.ChildSpec(id="counter", start=Counter.start, name="counter")], name="root"
    )
    sv.named("counter").ask("incr")
    print(sv.format_tree("root"))
    sv.stop(root)

See ``docs/supervisors.md`` for the OTP-to-Python mapping.
"""

from supervisors._actor import Actor, actor_of, spawn_options
from supervisors._async import FutureReply, ask_async, ask_future
from supervisors._backoff import Backoff
from supervisors._dynamic import DynamicSupervisor
from supervisors._errors import (
    ActorDeadError,
    AlreadyStarted,
    NoProc,
    StartError,
    SupervisorError,
    TaskFailed,
    Timeout,
)
from supervisors._fanout import FanOut, Settled, Slot, fan_out
from supervisors._introspect import Status, TreeNode, format_tree, get_state, get_status, tree
from supervisors._lifecycle import kill, stop
from supervisors._log import Logger, describe_reason, get_logger, safe_repr
from supervisors._messages import (
    Down,
    Exit,
    ExitSignal,
    MonitorRef,
    Ok,
    Reason,
    Reject,
    TaskResult,
    is_normal,
)
from supervisors._named_ref import NamedRef, named
from supervisors._registry import register, registered, unregister, wait_for_name, whereis
from supervisors._reply import Reply, ask
from supervisors._spec import ChildCounts, ChildInfo, ChildSpec
from supervisors._supervisor import (
    Observer,
    Supervisor,
    count_children,
    delete_child,
    restart_child,
    start_child,
    terminate_child,
    which_children,
)
from supervisors._task import Task, TaskSupervisor, async_nolink, async_stream
from supervisors._threads import shutdown_idle_threads

__all__ = [
    "Actor",
    "ActorDeadError",
    "AlreadyStarted",
    "Backoff",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "Down",
    "DynamicSupervisor",
    "Exit",
    "ExitSignal",
    "FanOut",
    "FutureReply",
    "Logger",
    "MonitorRef",
    "NamedRef",
    "NoProc",
    "Observer",
    "Ok",
    "Reason",
    "Reject",
    "Reply",
    "Settled",
    "Slot",
    "StartError",
    "Status",
    "Supervisor",
    "SupervisorError",
    "Task",
    "TaskFailed",
    "TaskResult",
    "TaskSupervisor",
    "Timeout",
    "TreeNode",
    "actor_of",
    "ask",
    "ask_async",
    "ask_future",
    "async_nolink",
    "async_stream",
    "count_children",
    "delete_child",
    "describe_reason",
    "fan_out",
    "format_tree",
    "get_logger",
    "get_state",
    "get_status",
    "is_normal",
    "kill",
    "named",
    "register",
    "registered",
    "restart_child",
    "safe_repr",
    "shutdown_idle_threads",
    "spawn_options",
    "start_child",
    "stop",
    "terminate_child",
    "tree",
    "unregister",
    "wait_for_name",
    "whereis",
    "which_children",
]

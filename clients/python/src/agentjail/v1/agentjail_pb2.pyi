import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LineEnding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINE_ENDING_UNSPECIFIED: _ClassVar[LineEnding]
    LINE_ENDING_NONE: _ClassVar[LineEnding]
    LINE_ENDING_LF: _ClassVar[LineEnding]
    LINE_ENDING_CRLF: _ClassVar[LineEnding]
    LINE_ENDING_MIXED: _ClassVar[LineEnding]

class WriteMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WRITE_MODE_UNSPECIFIED: _ClassVar[WriteMode]
    WRITE_MODE_CREATE_ONLY: _ClassVar[WriteMode]
    WRITE_MODE_OVERWRITE: _ClassVar[WriteMode]
    WRITE_MODE_UPSERT: _ClassVar[WriteMode]

class EntryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_KIND_UNSPECIFIED: _ClassVar[EntryKind]
    ENTRY_KIND_FILE: _ClassVar[EntryKind]
    ENTRY_KIND_DIR: _ClassVar[EntryKind]
    ENTRY_KIND_SYMLINK: _ClassVar[EntryKind]
    ENTRY_KIND_OTHER: _ClassVar[EntryKind]

class SortOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SORT_ORDER_UNSPECIFIED: _ClassVar[SortOrder]
    SORT_ORDER_NAME: _ClassVar[SortOrder]
    SORT_ORDER_MTIME: _ClassVar[SortOrder]
    SORT_ORDER_SIZE: _ClassVar[SortOrder]

class GrepOutput(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GREP_OUTPUT_UNSPECIFIED: _ClassVar[GrepOutput]
    GREP_OUTPUT_FILES: _ClassVar[GrepOutput]
    GREP_OUTPUT_CONTENT: _ClassVar[GrepOutput]
    GREP_OUTPUT_COUNT: _ClassVar[GrepOutput]

class OutputStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_STREAM_STDOUT: _ClassVar[OutputStream]
    OUTPUT_STREAM_STDERR: _ClassVar[OutputStream]
LINE_ENDING_UNSPECIFIED: LineEnding
LINE_ENDING_NONE: LineEnding
LINE_ENDING_LF: LineEnding
LINE_ENDING_CRLF: LineEnding
LINE_ENDING_MIXED: LineEnding
WRITE_MODE_UNSPECIFIED: WriteMode
WRITE_MODE_CREATE_ONLY: WriteMode
WRITE_MODE_OVERWRITE: WriteMode
WRITE_MODE_UPSERT: WriteMode
ENTRY_KIND_UNSPECIFIED: EntryKind
ENTRY_KIND_FILE: EntryKind
ENTRY_KIND_DIR: EntryKind
ENTRY_KIND_SYMLINK: EntryKind
ENTRY_KIND_OTHER: EntryKind
SORT_ORDER_UNSPECIFIED: SortOrder
SORT_ORDER_NAME: SortOrder
SORT_ORDER_MTIME: SortOrder
SORT_ORDER_SIZE: SortOrder
GREP_OUTPUT_UNSPECIFIED: GrepOutput
GREP_OUTPUT_FILES: GrepOutput
GREP_OUTPUT_CONTENT: GrepOutput
GREP_OUTPUT_COUNT: GrepOutput
OUTPUT_STREAM_STDOUT: OutputStream
OUTPUT_STREAM_STDERR: OutputStream

class CallInfo(_message.Message):
    __slots__ = ("request_id", "agent", "rule", "audit_seq", "policy_version")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    AUDIT_SEQ_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    agent: str
    rule: str
    audit_seq: int
    policy_version: str
    def __init__(self, request_id: _Optional[str] = ..., agent: _Optional[str] = ..., rule: _Optional[str] = ..., audit_seq: _Optional[int] = ..., policy_version: _Optional[str] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("agent", "identified_by", "uid", "gid", "pid", "workspaces", "info", "capabilities", "usage")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIED_BY_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACES_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    agent: str
    identified_by: str
    uid: int
    gid: int
    pid: int
    workspaces: _containers.RepeatedCompositeFieldContainer[WorkspaceInfo]
    info: CallInfo
    capabilities: Capabilities
    usage: Usage
    def __init__(self, agent: _Optional[str] = ..., identified_by: _Optional[str] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., pid: _Optional[int] = ..., workspaces: _Optional[_Iterable[_Union[WorkspaceInfo, _Mapping]]] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ..., capabilities: _Optional[_Union[Capabilities, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("running_file_calls", "running_commands", "budgets")
    RUNNING_FILE_CALLS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_COMMANDS_FIELD_NUMBER: _ClassVar[int]
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    running_file_calls: int
    running_commands: int
    budgets: _containers.RepeatedCompositeFieldContainer[BudgetUsage]
    def __init__(self, running_file_calls: _Optional[int] = ..., running_commands: _Optional[int] = ..., budgets: _Optional[_Iterable[_Union[BudgetUsage, _Mapping]]] = ...) -> None: ...

class BudgetUsage(_message.Message):
    __slots__ = ("limit", "used", "max", "unit", "window_seconds")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    limit: str
    used: int
    max: int
    unit: str
    window_seconds: int
    def __init__(self, limit: _Optional[str] = ..., used: _Optional[int] = ..., max: _Optional[int] = ..., unit: _Optional[str] = ..., window_seconds: _Optional[int] = ...) -> None: ...

class WorkspaceInfo(_message.Message):
    __slots__ = ("name", "path", "read_only", "sandbox_path", "access", "read", "write", "deny")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_PATH_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    DENY_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    read_only: bool
    sandbox_path: str
    access: str
    read: _containers.RepeatedScalarFieldContainer[str]
    write: _containers.RepeatedScalarFieldContainer[str]
    deny: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., read_only: _Optional[bool] = ..., sandbox_path: _Optional[str] = ..., access: _Optional[str] = ..., read: _Optional[_Iterable[str]] = ..., write: _Optional[_Iterable[str]] = ..., deny: _Optional[_Iterable[str]] = ...) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("file_limits", "commands", "limits", "deterministic", "source_date_epoch")
    FILE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    DETERMINISTIC_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DATE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    file_limits: FileLimits
    commands: CommandCapabilities
    limits: AgentLimits
    deterministic: bool
    source_date_epoch: int
    def __init__(self, file_limits: _Optional[_Union[FileLimits, _Mapping]] = ..., commands: _Optional[_Union[CommandCapabilities, _Mapping]] = ..., limits: _Optional[_Union[AgentLimits, _Mapping]] = ..., deterministic: _Optional[bool] = ..., source_date_epoch: _Optional[int] = ...) -> None: ...

class AgentLimits(_message.Message):
    __slots__ = ("read_per_second", "write_per_second", "command_per_second", "concurrent_file_calls", "concurrent_commands", "budget_window_seconds", "command_cpu_seconds", "command_wall_seconds", "write_bytes", "sources")
    class SourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    READ_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    WRITE_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    COMMAND_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    CONCURRENT_FILE_CALLS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENT_COMMANDS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WRITE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    read_per_second: int
    write_per_second: int
    command_per_second: int
    concurrent_file_calls: int
    concurrent_commands: int
    budget_window_seconds: int
    command_cpu_seconds: int
    command_wall_seconds: int
    write_bytes: int
    sources: _containers.ScalarMap[str, str]
    def __init__(self, read_per_second: _Optional[int] = ..., write_per_second: _Optional[int] = ..., command_per_second: _Optional[int] = ..., concurrent_file_calls: _Optional[int] = ..., concurrent_commands: _Optional[int] = ..., budget_window_seconds: _Optional[int] = ..., command_cpu_seconds: _Optional[int] = ..., command_wall_seconds: _Optional[int] = ..., write_bytes: _Optional[int] = ..., sources: _Optional[_Mapping[str, str]] = ...) -> None: ...

class FileLimits(_message.Message):
    __slots__ = ("max_read_bytes", "max_write_bytes", "max_file_bytes")
    MAX_READ_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_WRITE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_read_bytes: int
    max_write_bytes: int
    max_file_bytes: int
    def __init__(self, max_read_bytes: _Optional[int] = ..., max_write_bytes: _Optional[int] = ..., max_file_bytes: _Optional[int] = ...) -> None: ...

class ProgramInfo(_message.Message):
    __slots__ = ("program", "resolved", "deny_args")
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    DENY_ARGS_FIELD_NUMBER: _ClassVar[int]
    program: str
    resolved: str
    deny_args: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, program: _Optional[str] = ..., resolved: _Optional[str] = ..., deny_args: _Optional[_Iterable[str]] = ...) -> None: ...

class CommandCapabilities(_message.Message):
    __slots__ = ("allowed", "programs", "shell", "network", "env", "path", "default_timeout_ms", "max_timeout_ms", "output_budget_bytes", "memory_bytes", "pids", "cpu_seconds", "nofile", "fsize_bytes", "cpu_percent", "workspace_mount")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    PROGRAMS_FIELD_NUMBER: _ClassVar[int]
    SHELL_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NOFILE_FIELD_NUMBER: _ClassVar[int]
    FSIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_MOUNT_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    programs: _containers.RepeatedCompositeFieldContainer[ProgramInfo]
    shell: bool
    network: bool
    env: _containers.RepeatedScalarFieldContainer[str]
    path: _containers.RepeatedScalarFieldContainer[str]
    default_timeout_ms: int
    max_timeout_ms: int
    output_budget_bytes: int
    memory_bytes: int
    pids: int
    cpu_seconds: int
    nofile: int
    fsize_bytes: int
    cpu_percent: int
    workspace_mount: str
    def __init__(self, allowed: _Optional[bool] = ..., programs: _Optional[_Iterable[_Union[ProgramInfo, _Mapping]]] = ..., shell: _Optional[bool] = ..., network: _Optional[bool] = ..., env: _Optional[_Iterable[str]] = ..., path: _Optional[_Iterable[str]] = ..., default_timeout_ms: _Optional[int] = ..., max_timeout_ms: _Optional[int] = ..., output_budget_bytes: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., pids: _Optional[int] = ..., cpu_seconds: _Optional[int] = ..., nofile: _Optional[int] = ..., fsize_bytes: _Optional[int] = ..., cpu_percent: _Optional[int] = ..., workspace_mount: _Optional[str] = ...) -> None: ...

class LineWindow(_message.Message):
    __slots__ = ("offset", "limit")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    offset: int
    limit: int
    def __init__(self, offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ByteWindow(_message.Message):
    __slots__ = ("offset", "limit")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    offset: int
    limit: int
    def __init__(self, offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ReadFileRequest(_message.Message):
    __slots__ = ("workspace", "path", "lines", "bytes", "max_bytes")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    path: str
    lines: LineWindow
    bytes: ByteWindow
    max_bytes: int
    def __init__(self, workspace: _Optional[str] = ..., path: _Optional[str] = ..., lines: _Optional[_Union[LineWindow, _Mapping]] = ..., bytes: _Optional[_Union[ByteWindow, _Mapping]] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class ReadFileResponse(_message.Message):
    __slots__ = ("path", "text", "data", "is_binary", "encoding", "line_ending", "total_lines", "total_bytes", "sha256", "mtime", "offset", "truncated", "next_offset", "lines_returned", "info")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    IS_BINARY_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    LINE_ENDING_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LINES_RETURNED_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    path: str
    text: str
    data: bytes
    is_binary: bool
    encoding: str
    line_ending: LineEnding
    total_lines: int
    total_bytes: int
    sha256: str
    mtime: _timestamp_pb2.Timestamp
    offset: int
    truncated: bool
    next_offset: int
    lines_returned: int
    info: CallInfo
    def __init__(self, path: _Optional[str] = ..., text: _Optional[str] = ..., data: _Optional[bytes] = ..., is_binary: _Optional[bool] = ..., encoding: _Optional[str] = ..., line_ending: _Optional[_Union[LineEnding, str]] = ..., total_lines: _Optional[int] = ..., total_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., mtime: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offset: _Optional[int] = ..., truncated: _Optional[bool] = ..., next_offset: _Optional[int] = ..., lines_returned: _Optional[int] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class WriteFileRequest(_message.Message):
    __slots__ = ("workspace", "path", "content", "mode", "create_parents", "expected_sha256", "idempotency_key")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CREATE_PARENTS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHA256_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    path: str
    content: bytes
    mode: WriteMode
    create_parents: bool
    expected_sha256: str
    idempotency_key: str
    def __init__(self, workspace: _Optional[str] = ..., path: _Optional[str] = ..., content: _Optional[bytes] = ..., mode: _Optional[_Union[WriteMode, str]] = ..., create_parents: _Optional[bool] = ..., expected_sha256: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class WriteFileResponse(_message.Message):
    __slots__ = ("path", "sha256", "previous_sha256", "bytes_written", "created", "info")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SHA256_FIELD_NUMBER: _ClassVar[int]
    BYTES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    previous_sha256: str
    bytes_written: int
    created: bool
    info: CallInfo
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[str] = ..., previous_sha256: _Optional[str] = ..., bytes_written: _Optional[int] = ..., created: _Optional[bool] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class Edit(_message.Message):
    __slots__ = ("old", "new", "replace_all")
    OLD_FIELD_NUMBER: _ClassVar[int]
    NEW_FIELD_NUMBER: _ClassVar[int]
    REPLACE_ALL_FIELD_NUMBER: _ClassVar[int]
    old: str
    new: str
    replace_all: bool
    def __init__(self, old: _Optional[str] = ..., new: _Optional[str] = ..., replace_all: _Optional[bool] = ...) -> None: ...

class EditFileRequest(_message.Message):
    __slots__ = ("workspace", "path", "edits", "dry_run", "expected_sha256", "idempotency_key")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    EDITS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHA256_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    path: str
    edits: _containers.RepeatedCompositeFieldContainer[Edit]
    dry_run: bool
    expected_sha256: str
    idempotency_key: str
    def __init__(self, workspace: _Optional[str] = ..., path: _Optional[str] = ..., edits: _Optional[_Iterable[_Union[Edit, _Mapping]]] = ..., dry_run: _Optional[bool] = ..., expected_sha256: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class EditFileResponse(_message.Message):
    __slots__ = ("path", "diff", "sha256", "previous_sha256", "replacements", "applied", "info")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DIFF_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SHA256_FIELD_NUMBER: _ClassVar[int]
    REPLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    path: str
    diff: str
    sha256: str
    previous_sha256: str
    replacements: _containers.RepeatedScalarFieldContainer[int]
    applied: bool
    info: CallInfo
    def __init__(self, path: _Optional[str] = ..., diff: _Optional[str] = ..., sha256: _Optional[str] = ..., previous_sha256: _Optional[str] = ..., replacements: _Optional[_Iterable[int]] = ..., applied: _Optional[bool] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class DirEntry(_message.Message):
    __slots__ = ("path", "kind", "size", "mtime", "depth")
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    path: str
    kind: EntryKind
    size: int
    mtime: _timestamp_pb2.Timestamp
    depth: int
    def __init__(self, path: _Optional[str] = ..., kind: _Optional[_Union[EntryKind, str]] = ..., size: _Optional[int] = ..., mtime: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., depth: _Optional[int] = ...) -> None: ...

class ListDirRequest(_message.Message):
    __slots__ = ("workspace", "path", "depth", "include_hidden", "respect_gitignore", "sort", "max_entries", "page_token")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_HIDDEN_FIELD_NUMBER: _ClassVar[int]
    RESPECT_GITIGNORE_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    MAX_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    path: str
    depth: int
    include_hidden: bool
    respect_gitignore: bool
    sort: SortOrder
    max_entries: int
    page_token: str
    def __init__(self, workspace: _Optional[str] = ..., path: _Optional[str] = ..., depth: _Optional[int] = ..., include_hidden: _Optional[bool] = ..., respect_gitignore: _Optional[bool] = ..., sort: _Optional[_Union[SortOrder, str]] = ..., max_entries: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDirResponse(_message.Message):
    __slots__ = ("entries", "next_page_token", "scan_truncated", "info")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SCAN_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[DirEntry]
    next_page_token: str
    scan_truncated: bool
    info: CallInfo
    def __init__(self, entries: _Optional[_Iterable[_Union[DirEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., scan_truncated: _Optional[bool] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class GlobRequest(_message.Message):
    __slots__ = ("workspace", "pattern", "path", "include_hidden", "respect_gitignore", "max_results", "sort")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_HIDDEN_FIELD_NUMBER: _ClassVar[int]
    RESPECT_GITIGNORE_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    pattern: str
    path: str
    include_hidden: bool
    respect_gitignore: bool
    max_results: int
    sort: SortOrder
    def __init__(self, workspace: _Optional[str] = ..., pattern: _Optional[str] = ..., path: _Optional[str] = ..., include_hidden: _Optional[bool] = ..., respect_gitignore: _Optional[bool] = ..., max_results: _Optional[int] = ..., sort: _Optional[_Union[SortOrder, str]] = ...) -> None: ...

class GlobResponse(_message.Message):
    __slots__ = ("paths", "truncated", "info")
    PATHS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    paths: _containers.RepeatedScalarFieldContainer[str]
    truncated: bool
    info: CallInfo
    def __init__(self, paths: _Optional[_Iterable[str]] = ..., truncated: _Optional[bool] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class GrepRequest(_message.Message):
    __slots__ = ("workspace", "pattern", "fixed_string", "case_insensitive", "path", "glob", "context_before", "context_after", "output", "max_results", "include_hidden", "respect_gitignore")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    FIXED_STRING_FIELD_NUMBER: _ClassVar[int]
    CASE_INSENSITIVE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    GLOB_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_HIDDEN_FIELD_NUMBER: _ClassVar[int]
    RESPECT_GITIGNORE_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    pattern: str
    fixed_string: bool
    case_insensitive: bool
    path: str
    glob: str
    context_before: int
    context_after: int
    output: GrepOutput
    max_results: int
    include_hidden: bool
    respect_gitignore: bool
    def __init__(self, workspace: _Optional[str] = ..., pattern: _Optional[str] = ..., fixed_string: _Optional[bool] = ..., case_insensitive: _Optional[bool] = ..., path: _Optional[str] = ..., glob: _Optional[str] = ..., context_before: _Optional[int] = ..., context_after: _Optional[int] = ..., output: _Optional[_Union[GrepOutput, str]] = ..., max_results: _Optional[int] = ..., include_hidden: _Optional[bool] = ..., respect_gitignore: _Optional[bool] = ...) -> None: ...

class GrepLine(_message.Message):
    __slots__ = ("path", "line_number", "text", "is_match")
    PATH_FIELD_NUMBER: _ClassVar[int]
    LINE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IS_MATCH_FIELD_NUMBER: _ClassVar[int]
    path: str
    line_number: int
    text: str
    is_match: bool
    def __init__(self, path: _Optional[str] = ..., line_number: _Optional[int] = ..., text: _Optional[str] = ..., is_match: _Optional[bool] = ...) -> None: ...

class GrepCount(_message.Message):
    __slots__ = ("path", "count")
    PATH_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    path: str
    count: int
    def __init__(self, path: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class GrepResponse(_message.Message):
    __slots__ = ("files", "lines", "counts", "truncated", "files_searched", "info")
    FILES_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    FILES_SEARCHED_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedScalarFieldContainer[str]
    lines: _containers.RepeatedCompositeFieldContainer[GrepLine]
    counts: _containers.RepeatedCompositeFieldContainer[GrepCount]
    truncated: bool
    files_searched: int
    info: CallInfo
    def __init__(self, files: _Optional[_Iterable[str]] = ..., lines: _Optional[_Iterable[_Union[GrepLine, _Mapping]]] = ..., counts: _Optional[_Iterable[_Union[GrepCount, _Mapping]]] = ..., truncated: _Optional[bool] = ..., files_searched: _Optional[int] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class StatRequest(_message.Message):
    __slots__ = ("workspace", "path", "no_follow")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    NO_FOLLOW_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    path: str
    no_follow: bool
    def __init__(self, workspace: _Optional[str] = ..., path: _Optional[str] = ..., no_follow: _Optional[bool] = ...) -> None: ...

class StatResponse(_message.Message):
    __slots__ = ("path", "kind", "size", "mode", "mtime", "symlink_target", "readable", "writable", "info")
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    SYMLINK_TARGET_FIELD_NUMBER: _ClassVar[int]
    READABLE_FIELD_NUMBER: _ClassVar[int]
    WRITABLE_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    path: str
    kind: EntryKind
    size: int
    mode: int
    mtime: _timestamp_pb2.Timestamp
    symlink_target: str
    readable: bool
    writable: bool
    info: CallInfo
    def __init__(self, path: _Optional[str] = ..., kind: _Optional[_Union[EntryKind, str]] = ..., size: _Optional[int] = ..., mode: _Optional[int] = ..., mtime: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., symlink_target: _Optional[str] = ..., readable: _Optional[bool] = ..., writable: _Optional[bool] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class MakeDirRequest(_message.Message):
    __slots__ = ("workspace", "path", "parents", "idempotency_key")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    path: str
    parents: bool
    idempotency_key: str
    def __init__(self, workspace: _Optional[str] = ..., path: _Optional[str] = ..., parents: _Optional[bool] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class MakeDirResponse(_message.Message):
    __slots__ = ("path", "created", "info")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    path: str
    created: bool
    info: CallInfo
    def __init__(self, path: _Optional[str] = ..., created: _Optional[bool] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class MoveRequest(_message.Message):
    __slots__ = ("workspace", "to", "overwrite", "create_parents", "idempotency_key")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    CREATE_PARENTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    to: str
    overwrite: bool
    create_parents: bool
    idempotency_key: str
    def __init__(self, workspace: _Optional[str] = ..., to: _Optional[str] = ..., overwrite: _Optional[bool] = ..., create_parents: _Optional[bool] = ..., idempotency_key: _Optional[str] = ..., **kwargs) -> None: ...

class MoveResponse(_message.Message):
    __slots__ = ("to", "overwrote", "info")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    OVERWROTE_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    to: str
    overwrote: bool
    info: CallInfo
    def __init__(self, to: _Optional[str] = ..., overwrote: _Optional[bool] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ..., **kwargs) -> None: ...

class RemoveRequest(_message.Message):
    __slots__ = ("workspace", "path", "recursive", "missing_ok", "idempotency_key")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    MISSING_OK_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    path: str
    recursive: bool
    missing_ok: bool
    idempotency_key: str
    def __init__(self, workspace: _Optional[str] = ..., path: _Optional[str] = ..., recursive: _Optional[bool] = ..., missing_ok: _Optional[bool] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RemoveResponse(_message.Message):
    __slots__ = ("path", "removed", "info")
    PATH_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    path: str
    removed: bool
    info: CallInfo
    def __init__(self, path: _Optional[str] = ..., removed: _Optional[bool] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class ExecRequest(_message.Message):
    __slots__ = ("workspace", "argv", "shell", "cwd", "env", "stdin", "timeout_ms", "idle_timeout_ms", "output_budget_bytes", "session_id", "deterministic", "idempotency_key")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    ARGV_FIELD_NUMBER: _ClassVar[int]
    SHELL_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DETERMINISTIC_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    argv: _containers.RepeatedScalarFieldContainer[str]
    shell: str
    cwd: str
    env: _containers.ScalarMap[str, str]
    stdin: bytes
    timeout_ms: int
    idle_timeout_ms: int
    output_budget_bytes: int
    session_id: str
    deterministic: bool
    idempotency_key: str
    def __init__(self, workspace: _Optional[str] = ..., argv: _Optional[_Iterable[str]] = ..., shell: _Optional[str] = ..., cwd: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., stdin: _Optional[bytes] = ..., timeout_ms: _Optional[int] = ..., idle_timeout_ms: _Optional[int] = ..., output_budget_bytes: _Optional[int] = ..., session_id: _Optional[str] = ..., deterministic: _Optional[bool] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ExecStarted(_message.Message):
    __slots__ = ("exec_id", "pid")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    pid: int
    def __init__(self, exec_id: _Optional[str] = ..., pid: _Optional[int] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ExecExited(_message.Message):
    __slots__ = ("exit_code", "signal", "timed_out", "idle_timed_out", "cancelled", "oom_killed", "wall_time_ms", "cpu_time_ms", "peak_memory_bytes", "stdout_bytes", "stderr_bytes", "stdout_truncated", "stderr_truncated", "info")
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    OOM_KILLED_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CPU_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDOUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDERR_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDOUT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    STDERR_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    exit_code: int
    signal: int
    timed_out: bool
    idle_timed_out: bool
    cancelled: bool
    oom_killed: bool
    wall_time_ms: int
    cpu_time_ms: int
    peak_memory_bytes: int
    stdout_bytes: int
    stderr_bytes: int
    stdout_truncated: bool
    stderr_truncated: bool
    info: CallInfo
    def __init__(self, exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., timed_out: _Optional[bool] = ..., idle_timed_out: _Optional[bool] = ..., cancelled: _Optional[bool] = ..., oom_killed: _Optional[bool] = ..., wall_time_ms: _Optional[int] = ..., cpu_time_ms: _Optional[int] = ..., peak_memory_bytes: _Optional[int] = ..., stdout_bytes: _Optional[int] = ..., stderr_bytes: _Optional[int] = ..., stdout_truncated: _Optional[bool] = ..., stderr_truncated: _Optional[bool] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class ExecEvent(_message.Message):
    __slots__ = ("started", "stdout", "stderr", "exited")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    started: ExecStarted
    stdout: OutputChunk
    stderr: OutputChunk
    exited: ExecExited
    def __init__(self, started: _Optional[_Union[ExecStarted, _Mapping]] = ..., stdout: _Optional[_Union[OutputChunk, _Mapping]] = ..., stderr: _Optional[_Union[OutputChunk, _Mapping]] = ..., exited: _Optional[_Union[ExecExited, _Mapping]] = ...) -> None: ...

class CapturedOutput(_message.Message):
    __slots__ = ("head", "tail", "omitted_bytes", "total_bytes")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    OMITTED_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    head: bytes
    tail: bytes
    omitted_bytes: int
    total_bytes: int
    def __init__(self, head: _Optional[bytes] = ..., tail: _Optional[bytes] = ..., omitted_bytes: _Optional[int] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class ExecResult(_message.Message):
    __slots__ = ("exec_id", "stdout", "stderr", "exited")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    stdout: CapturedOutput
    stderr: CapturedOutput
    exited: ExecExited
    def __init__(self, exec_id: _Optional[str] = ..., stdout: _Optional[_Union[CapturedOutput, _Mapping]] = ..., stderr: _Optional[_Union[CapturedOutput, _Mapping]] = ..., exited: _Optional[_Union[ExecExited, _Mapping]] = ...) -> None: ...

class SessionLimits(_message.Message):
    __slots__ = ("memory_bytes", "pids")
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    memory_bytes: int
    pids: int
    def __init__(self, memory_bytes: _Optional[int] = ..., pids: _Optional[int] = ...) -> None: ...

class OpenSessionRequest(_message.Message):
    __slots__ = ("workspace", "env", "cwd", "limits", "idle_timeout_ms", "max_lifetime_ms")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_LIFETIME_MS_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    env: _containers.ScalarMap[str, str]
    cwd: str
    limits: SessionLimits
    idle_timeout_ms: int
    max_lifetime_ms: int
    def __init__(self, workspace: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., cwd: _Optional[str] = ..., limits: _Optional[_Union[SessionLimits, _Mapping]] = ..., idle_timeout_ms: _Optional[int] = ..., max_lifetime_ms: _Optional[int] = ...) -> None: ...

class SessionInfo(_message.Message):
    __slots__ = ("session_id", "workspace", "cwd", "opened_at", "last_used_at", "expires_at", "idle_timeout_ms", "running_processes", "limits", "ended")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    workspace: str
    cwd: str
    opened_at: _timestamp_pb2.Timestamp
    last_used_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    idle_timeout_ms: int
    running_processes: int
    limits: SessionLimits
    ended: str
    def __init__(self, session_id: _Optional[str] = ..., workspace: _Optional[str] = ..., cwd: _Optional[str] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idle_timeout_ms: _Optional[int] = ..., running_processes: _Optional[int] = ..., limits: _Optional[_Union[SessionLimits, _Mapping]] = ..., ended: _Optional[str] = ...) -> None: ...

class OpenSessionResponse(_message.Message):
    __slots__ = ("session", "info")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    info: CallInfo
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ("session", "info")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    info: CallInfo
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions", "info")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[SessionInfo]
    info: CallInfo
    def __init__(self, sessions: _Optional[_Iterable[_Union[SessionInfo, _Mapping]]] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class StartProcessRequest(_message.Message):
    __slots__ = ("session_id", "argv", "shell", "cwd", "env", "tty", "rows", "cols", "output_buffer_bytes", "idempotency_key")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ARGV_FIELD_NUMBER: _ClassVar[int]
    SHELL_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BUFFER_BYTES_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    argv: _containers.RepeatedScalarFieldContainer[str]
    shell: str
    cwd: str
    env: _containers.ScalarMap[str, str]
    tty: bool
    rows: int
    cols: int
    output_buffer_bytes: int
    idempotency_key: str
    def __init__(self, session_id: _Optional[str] = ..., argv: _Optional[_Iterable[str]] = ..., shell: _Optional[str] = ..., cwd: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., tty: _Optional[bool] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ..., output_buffer_bytes: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class StartProcessResponse(_message.Message):
    __slots__ = ("process", "info")
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    process: ProcessInfo
    info: CallInfo
    def __init__(self, process: _Optional[_Union[ProcessInfo, _Mapping]] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class ReadOutputRequest(_message.Message):
    __slots__ = ("session_id", "process_id", "stream", "offset", "max_bytes", "wait_ms")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    process_id: str
    stream: OutputStream
    offset: int
    max_bytes: int
    wait_ms: int
    def __init__(self, session_id: _Optional[str] = ..., process_id: _Optional[str] = ..., stream: _Optional[_Union[OutputStream, str]] = ..., offset: _Optional[int] = ..., max_bytes: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class ReadOutputResponse(_message.Message):
    __slots__ = ("data", "offset", "next_offset", "lost_bytes", "eof", "process", "info")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LOST_BYTES_FIELD_NUMBER: _ClassVar[int]
    EOF_FIELD_NUMBER: _ClassVar[int]
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    next_offset: int
    lost_bytes: int
    eof: bool
    process: ProcessInfo
    info: CallInfo
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., next_offset: _Optional[int] = ..., lost_bytes: _Optional[int] = ..., eof: _Optional[bool] = ..., process: _Optional[_Union[ProcessInfo, _Mapping]] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class WriteStdinRequest(_message.Message):
    __slots__ = ("session_id", "process_id", "data", "close")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    process_id: str
    data: bytes
    close: bool
    def __init__(self, session_id: _Optional[str] = ..., process_id: _Optional[str] = ..., data: _Optional[bytes] = ..., close: _Optional[bool] = ...) -> None: ...

class WriteStdinResponse(_message.Message):
    __slots__ = ("written", "info")
    WRITTEN_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    written: int
    info: CallInfo
    def __init__(self, written: _Optional[int] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class SignalProcessRequest(_message.Message):
    __slots__ = ("session_id", "process_id", "signal")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    process_id: str
    signal: int
    def __init__(self, session_id: _Optional[str] = ..., process_id: _Optional[str] = ..., signal: _Optional[int] = ...) -> None: ...

class SignalProcessResponse(_message.Message):
    __slots__ = ("process", "info")
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    process: ProcessInfo
    info: CallInfo
    def __init__(self, process: _Optional[_Union[ProcessInfo, _Mapping]] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class WaitProcessRequest(_message.Message):
    __slots__ = ("session_id", "process_id", "timeout_ms")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    process_id: str
    timeout_ms: int
    def __init__(self, session_id: _Optional[str] = ..., process_id: _Optional[str] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class WaitProcessResponse(_message.Message):
    __slots__ = ("process", "info")
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    process: ProcessInfo
    info: CallInfo
    def __init__(self, process: _Optional[_Union[ProcessInfo, _Mapping]] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class ListProcessesRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ListProcessesResponse(_message.Message):
    __slots__ = ("processes", "info")
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    processes: _containers.RepeatedCompositeFieldContainer[ProcessInfo]
    info: CallInfo
    def __init__(self, processes: _Optional[_Iterable[_Union[ProcessInfo, _Mapping]]] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class ResizeTerminalRequest(_message.Message):
    __slots__ = ("session_id", "process_id", "rows", "cols")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    process_id: str
    rows: int
    cols: int
    def __init__(self, session_id: _Optional[str] = ..., process_id: _Optional[str] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ...) -> None: ...

class ResizeTerminalResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: CallInfo
    def __init__(self, info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

class ProcessInfo(_message.Message):
    __slots__ = ("process_id", "argv", "pid", "tty", "running", "exited", "started_at", "stdout_bytes", "stderr_bytes", "stdout_lost_bytes", "stderr_lost_bytes")
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    ARGV_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    STDOUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDERR_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDOUT_LOST_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDERR_LOST_BYTES_FIELD_NUMBER: _ClassVar[int]
    process_id: str
    argv: _containers.RepeatedScalarFieldContainer[str]
    pid: int
    tty: bool
    running: bool
    exited: ExecExited
    started_at: _timestamp_pb2.Timestamp
    stdout_bytes: int
    stderr_bytes: int
    stdout_lost_bytes: int
    stderr_lost_bytes: int
    def __init__(self, process_id: _Optional[str] = ..., argv: _Optional[_Iterable[str]] = ..., pid: _Optional[int] = ..., tty: _Optional[bool] = ..., running: _Optional[bool] = ..., exited: _Optional[_Union[ExecExited, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stdout_bytes: _Optional[int] = ..., stderr_bytes: _Optional[int] = ..., stdout_lost_bytes: _Optional[int] = ..., stderr_lost_bytes: _Optional[int] = ...) -> None: ...

class OpenPortRequest(_message.Message):
    __slots__ = ("session_id", "port")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    port: int
    def __init__(self, session_id: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class OpenPortResponse(_message.Message):
    __slots__ = ("socket_path", "info")
    SOCKET_PATH_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    socket_path: str
    info: CallInfo
    def __init__(self, socket_path: _Optional[str] = ..., info: _Optional[_Union[CallInfo, _Mapping]] = ...) -> None: ...

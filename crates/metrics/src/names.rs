//! The descriptions of every series the collectors emit: cAdvisor's names for tasks, node-exporter's for the host.

use crate::desc::{Desc, MetricType::Counter, MetricType::Gauge};

macro_rules! descs {
    ($($(#[$m:meta])* $id:ident = $name:literal, $kind:ident, $unit:literal, $help:literal;)*) => {
        $( $(#[$m])* pub static $id: Desc = Desc::new($name, $kind, $unit, $help); )*
        /// Every description in this module, for the metadata API.
        pub static ALL: &[&Desc] = &[$(&$id),*];
    };
}

descs! {
    /// cAdvisor: cumulative CPU time (label `cpu="total"`).
    CPU_USAGE = "container_cpu_usage_seconds_total", Counter, "seconds", "Cumulative cpu time consumed in seconds.";
    /// cAdvisor: user CPU time.
    CPU_USER = "container_cpu_user_seconds_total", Counter, "seconds", "Cumulative user cpu time consumed in seconds.";
    /// cAdvisor: system CPU time.
    CPU_SYSTEM = "container_cpu_system_seconds_total", Counter, "seconds", "Cumulative system cpu time consumed in seconds.";
    /// cAdvisor: CFS periods (only with a quota).
    CFS_PERIODS = "container_cpu_cfs_periods_total", Counter, "", "Number of elapsed enforcement period intervals.";
    /// cAdvisor: throttled CFS periods (only with a quota).
    CFS_THROTTLED_PERIODS = "container_cpu_cfs_throttled_periods_total", Counter, "", "Number of throttled period intervals.";
    /// cAdvisor: throttled time (only with a quota).
    CFS_THROTTLED_SECONDS = "container_cpu_cfs_throttled_seconds_total", Counter, "seconds", "Total time duration the container has been throttled.";
    /// cAdvisor: memory usage including page cache.
    MEMORY_USAGE = "container_memory_usage_bytes", Gauge, "bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed";
    /// cAdvisor: usage minus inactive file pages, floored at 0.
    MEMORY_WORKING_SET = "container_memory_working_set_bytes", Gauge, "bytes", "Current working set in bytes.";
    /// cAdvisor: anonymous memory (v1 `total_rss`, v2 `anon`).
    MEMORY_RSS = "container_memory_rss", Gauge, "bytes", "Size of RSS in bytes.";
    /// cAdvisor: page cache (v1 `total_cache`, v2 `file`).
    MEMORY_CACHE = "container_memory_cache", Gauge, "bytes", "Number of bytes of page cache memory.";
    /// cAdvisor: swap usage.
    MEMORY_SWAP = "container_memory_swap", Gauge, "bytes", "Container swap usage in bytes.";
    /// cAdvisor: mapped files (v1 `total_mapped_file`, v2 `file_mapped`).
    MEMORY_MAPPED_FILE = "container_memory_mapped_file", Gauge, "bytes", "Size of memory mapped files in bytes.";
    /// cAdvisor: times the limit was hit (v1 `memory.failcnt`, v2 `memory.events: max`).
    MEMORY_FAILCNT = "container_memory_failcnt", Counter, "", "Number of memory usage hits limits";
    /// cAdvisor: peak usage (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`).
    MEMORY_MAX_USAGE = "container_memory_max_usage_bytes", Gauge, "bytes", "Maximum memory usage recorded in bytes";
    /// cAdvisor: OOM kills (v1 `memory.oom_control: oom_kill`, v2 `memory.events: oom_kill`).
    OOM_EVENTS = "container_oom_events_total", Counter, "", "Count of out of memory events observed for the container";
    /// cAdvisor: memory limit, 0 when unlimited.
    SPEC_MEMORY_LIMIT = "container_spec_memory_limit_bytes", Gauge, "bytes", "Memory limit for the container.";
    /// cAdvisor: CFS quota in microseconds (only when set).
    SPEC_CPU_QUOTA = "container_spec_cpu_quota", Gauge, "", "CPU quota of the container.";
    /// cAdvisor: CFS period in microseconds.
    SPEC_CPU_PERIOD = "container_spec_cpu_period", Gauge, "", "CPU period of the container.";
    /// cAdvisor: CPU shares (v2: converted from `cpu.weight`).
    SPEC_CPU_SHARES = "container_spec_cpu_shares", Gauge, "", "CPU share of the container.";
    /// cAdvisor: received bytes per interface.
    NET_RX_BYTES = "container_network_receive_bytes_total", Counter, "bytes", "Cumulative count of bytes received";
    /// cAdvisor: received packets per interface.
    NET_RX_PACKETS = "container_network_receive_packets_total", Counter, "", "Cumulative count of packets received";
    /// cAdvisor: receive errors per interface.
    NET_RX_ERRORS = "container_network_receive_errors_total", Counter, "", "Cumulative count of errors encountered while receiving";
    /// cAdvisor: receive drops per interface.
    NET_RX_DROPPED = "container_network_receive_packets_dropped_total", Counter, "", "Cumulative count of packets dropped while receiving";
    /// cAdvisor: transmitted bytes per interface.
    NET_TX_BYTES = "container_network_transmit_bytes_total", Counter, "bytes", "Cumulative count of bytes transmitted";
    /// cAdvisor: transmitted packets per interface.
    NET_TX_PACKETS = "container_network_transmit_packets_total", Counter, "", "Cumulative count of packets transmitted";
    /// cAdvisor: transmit errors per interface.
    NET_TX_ERRORS = "container_network_transmit_errors_total", Counter, "", "Cumulative count of errors encountered while transmitting";
    /// cAdvisor: transmit drops per interface.
    NET_TX_DROPPED = "container_network_transmit_packets_dropped_total", Counter, "", "Cumulative count of packets dropped while transmitting";
    /// cAdvisor: bytes read per block device.
    FS_READ_BYTES = "container_fs_reads_bytes_total", Counter, "bytes", "Cumulative count of bytes read";
    /// cAdvisor: bytes written per block device.
    FS_WRITE_BYTES = "container_fs_writes_bytes_total", Counter, "bytes", "Cumulative count of bytes written";
    /// cAdvisor: reads completed per block device.
    FS_READS = "container_fs_reads_total", Counter, "", "Cumulative count of reads completed";
    /// cAdvisor: writes completed per block device.
    FS_WRITES = "container_fs_writes_total", Counter, "", "Cumulative count of writes completed";
    /// cAdvisor: processes in the cgroup (`cgroup.procs`).
    PROCESSES = "container_processes", Gauge, "", "Number of processes running inside the container.";
    /// cAdvisor: threads in the cgroup (`pids.current`, else `tasks`).
    THREADS = "container_threads", Gauge, "", "Number of threads running inside the container";
    /// cAdvisor: start time of the task.
    START_TIME = "container_start_time_seconds", Gauge, "seconds", "Start time of the container since unix epoch in seconds.";
    /// cAdvisor: when the task was last collected.
    LAST_SEEN = "container_last_seen", Gauge, "seconds", "Last time a container was seen by the exporter";

    /// node-exporter: CPU time per cpu and mode.
    NODE_CPU = "node_cpu_seconds_total", Counter, "seconds", "Seconds the CPUs spent in each mode.";
    /// node-exporter: 1 minute load average.
    NODE_LOAD1 = "node_load1", Gauge, "", "1m load average.";
    /// node-exporter: 5 minute load average.
    NODE_LOAD5 = "node_load5", Gauge, "", "5m load average.";
    /// node-exporter: 15 minute load average.
    NODE_LOAD15 = "node_load15", Gauge, "", "15m load average.";
    /// node-exporter: `/proc/meminfo` MemTotal.
    NODE_MEM_TOTAL = "node_memory_MemTotal_bytes", Gauge, "bytes", "Memory information field MemTotal_bytes.";
    /// node-exporter: `/proc/meminfo` MemFree.
    NODE_MEM_FREE = "node_memory_MemFree_bytes", Gauge, "bytes", "Memory information field MemFree_bytes.";
    /// node-exporter: `/proc/meminfo` MemAvailable.
    NODE_MEM_AVAILABLE = "node_memory_MemAvailable_bytes", Gauge, "bytes", "Memory information field MemAvailable_bytes.";
    /// node-exporter: `/proc/meminfo` Buffers.
    NODE_MEM_BUFFERS = "node_memory_Buffers_bytes", Gauge, "bytes", "Memory information field Buffers_bytes.";
    /// node-exporter: `/proc/meminfo` Cached.
    NODE_MEM_CACHED = "node_memory_Cached_bytes", Gauge, "bytes", "Memory information field Cached_bytes.";
    /// node-exporter: `/proc/meminfo` SwapTotal.
    NODE_SWAP_TOTAL = "node_memory_SwapTotal_bytes", Gauge, "bytes", "Memory information field SwapTotal_bytes.";
    /// node-exporter: `/proc/meminfo` SwapFree.
    NODE_SWAP_FREE = "node_memory_SwapFree_bytes", Gauge, "bytes", "Memory information field SwapFree_bytes.";
    /// node-exporter: filesystem size.
    NODE_FS_SIZE = "node_filesystem_size_bytes", Gauge, "bytes", "Filesystem size in bytes.";
    /// node-exporter: free space (including the root reserve).
    NODE_FS_FREE = "node_filesystem_free_bytes", Gauge, "bytes", "Filesystem free space in bytes.";
    /// node-exporter: space available to unprivileged users.
    NODE_FS_AVAIL = "node_filesystem_avail_bytes", Gauge, "bytes", "Filesystem space available to non-root users in bytes.";
    /// node-exporter: bytes read per disk.
    NODE_DISK_READ_BYTES = "node_disk_read_bytes_total", Counter, "bytes", "The total number of bytes read successfully.";
    /// node-exporter: bytes written per disk.
    NODE_DISK_WRITTEN_BYTES = "node_disk_written_bytes_total", Counter, "bytes", "The total number of bytes written successfully.";
    /// node-exporter: reads completed per disk.
    NODE_DISK_READS = "node_disk_reads_completed_total", Counter, "", "The total number of reads completed successfully.";
    /// node-exporter: writes completed per disk.
    NODE_DISK_WRITES = "node_disk_writes_completed_total", Counter, "", "The total number of writes completed successfully.";
    /// node-exporter: time spent doing I/O per disk.
    NODE_DISK_IO_TIME = "node_disk_io_time_seconds_total", Counter, "seconds", "Total seconds spent doing I/Os.";
    /// node-exporter: received bytes per interface.
    NODE_NET_RX_BYTES = "node_network_receive_bytes_total", Counter, "bytes", "Network device statistic receive_bytes.";
    /// node-exporter: received packets per interface.
    NODE_NET_RX_PACKETS = "node_network_receive_packets_total", Counter, "", "Network device statistic receive_packets.";
    /// node-exporter: receive errors per interface.
    NODE_NET_RX_ERRS = "node_network_receive_errs_total", Counter, "", "Network device statistic receive_errs.";
    /// node-exporter: receive drops per interface.
    NODE_NET_RX_DROP = "node_network_receive_drop_total", Counter, "", "Network device statistic receive_drop.";
    /// node-exporter: transmitted bytes per interface.
    NODE_NET_TX_BYTES = "node_network_transmit_bytes_total", Counter, "bytes", "Network device statistic transmit_bytes.";
    /// node-exporter: transmitted packets per interface.
    NODE_NET_TX_PACKETS = "node_network_transmit_packets_total", Counter, "", "Network device statistic transmit_packets.";
    /// node-exporter: transmit errors per interface.
    NODE_NET_TX_ERRS = "node_network_transmit_errs_total", Counter, "", "Network device statistic transmit_errs.";
    /// node-exporter: transmit drops per interface.
    NODE_NET_TX_DROP = "node_network_transmit_drop_total", Counter, "", "Network device statistic transmit_drop.";
    /// node-exporter: boot time.
    NODE_BOOT_TIME = "node_boot_time_seconds", Gauge, "seconds", "Node boot time, in unixtime.";
    /// node-exporter: current time.
    NODE_TIME = "node_time_seconds", Gauge, "seconds", "System time in seconds since epoch (1970).";
    /// cAdvisor: number of logical CPUs.
    MACHINE_CPU_CORES = "machine_cpu_cores", Gauge, "", "Number of logical CPU cores.";
    /// cAdvisor: memory of the machine.
    MACHINE_MEMORY = "machine_memory_bytes", Gauge, "bytes", "Amount of memory installed on the machine.";
}

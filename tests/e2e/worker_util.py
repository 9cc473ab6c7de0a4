"""Configuration files of one worker (an updater and its agent) for
end-to-end tests: the agent on a free loopback port, the updater with the
`pki` fixture's updater certificate and test-sized limits and timings."""

from conftest import free_port

TEST_UPDATER_KEYS = {
    "stop_agent_on_exit": "true",
    "probe_deadline": "8s",
    "probe_stable": "300ms",
    "stop_grace": "2s",
    "max_upload": "8M",
    "max_unpacked": "32M",
    "max_entries": "200",
    "min_free": "1M",
    "log_level": "debug",
}


def write_worker_configs(tmp_path, pki, install_root, extra=None):
    """Write TMP_PATH/agent.conf and TMP_PATH/updater.conf (keys of EXTRA
    override the defaults); returns (agent_port, agent_conf, updater_conf)."""
    agent_port = free_port()
    agent_conf = str(tmp_path / "agent.conf")
    with open(agent_conf, "w") as f:
        f.write("ca = %s\ncert = %s\nkey = %s\nlisten = 127.0.0.1:%d\n"
                % (pki.ca_crt, pki.agent[0], pki.agent[1], agent_port))
    keys = {
        "listen": "127.0.0.1:0",
        "install_dir": install_root,
        "ca": pki.ca_crt,
        "cert": pki.updater[0],
        "key": pki.updater[1],
        "agent_config": agent_conf,
        "agent_probe": "127.0.0.1:%d" % agent_port,
    }
    keys.update(TEST_UPDATER_KEYS)
    keys.update(extra or {})
    conf = str(tmp_path / "updater.conf")
    with open(conf, "w") as f:
        for k, v in keys.items():
            f.write("%s = %s\n" % (k, v))
    return agent_port, agent_conf, conf

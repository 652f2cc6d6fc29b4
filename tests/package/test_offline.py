"""No test reaches the network: a connection outside loopback fails at once."""

import socket, pytest
def test_network_is_blocked():
    with pytest.raises(OSError, match="network access blocked"):
        socket.create_connection(("93.184.216.34", 80), timeout=2)

<?php
// A web application (running as the web server's user) asks the Airlock agent for an update
// check and reads its status. The agent verifies and installs; this code cannot, and needs not.
//
//   php airlock-trigger.php check     ask over the socket, print the answer
//   php airlock-trigger.php status    print the status the socket answers
//   php airlock-trigger.php pipe      ask through the FIFO, print the status file
//
// AIRLOCK_SOCKET, AIRLOCK_FIFO and AIRLOCK_STATUS_FILE override the paths below.

function airlock_request(string $socket, string $line): array
{
    $s = @stream_socket_client('unix://' . $socket, $errno, $errstr, 5);
    if ($s === false) {
        throw new RuntimeException("airlock agent at $socket: $errstr");
    }
    stream_set_timeout($s, 5);
    fwrite($s, $line . "\n");          // one request line: "check" or "status"
    $answer = fgets($s, 1 << 20);      // one JSON line back
    fclose($s);
    $data = json_decode((string) $answer, true);
    if (!is_array($data)) {
        throw new RuntimeException("airlock agent at $socket gave no answer");
    }
    return $data;
}

$socket = getenv('AIRLOCK_SOCKET') ?: '/run/airlock/agent.sock';
$fifo = getenv('AIRLOCK_FIFO') ?: '/run/airlock/myapp.trigger';
$statusFile = getenv('AIRLOCK_STATUS_FILE') ?: '/run/airlock/myapp.status';

switch ($argv[1] ?? 'check') {
    case 'check':
        echo json_encode(airlock_request($socket, 'check')), "\n";
        break;
    case 'status':
        echo json_encode(airlock_request($socket, 'status')), "\n";
        break;
    case 'pipe':
        // Write-only: the agent reads "check"; the answer is the status file, rewritten by the
        // agent after each change. (Opening a FIFO waits for its reader, the running agent.)
        file_put_contents($fifo, "check\n");
        echo file_get_contents($statusFile), "\n";
        break;
    default:
        fwrite(STDERR, "usage: php airlock-trigger.php check|status|pipe\n");
        exit(2);
}

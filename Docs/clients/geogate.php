<?php
/**
 * geogate client for PHP: asks the geogate daemon whether an address may use a
 * profile, e.g. before a login form checks the password:
 *
 *     require '/usr/share/geogate/geogate.php';  // the package installs it there
 *     if (!geogate_allowed('web', $_SERVER['REMOTE_ADDR'])) {
 *         geogate_deny();   // 403 and the "You are not allowed to connect" page
 *     }
 *
 * $failOpen decides what happens when the daemon cannot answer (not running, a
 * timeout, an error such as an unknown profile): false (the default) denies, so a
 * stopped daemon never opens the door; true allows, so it never locks users out.
 * Either way the reason goes to the PHP error log. An address that is not an IP
 * address is always denied. Protocol: Docs/PROTOCOL.md (CHECK <profile> <ip>).
 */
function geogate_allowed(string $profile, string $ip, bool $failOpen = false,
                         string $socket = '/run/geogate/geogate.sock', float $timeout = 0.5): bool
{
    if (filter_var($ip, FILTER_VALIDATE_IP) === false) {
        return false;
    }
    if (!preg_match('/^[a-z0-9_-]{1,20}$/', $profile)) {
        error_log("geogate: bad profile name " . json_encode($profile));
        return $failOpen;
    }
    $errno = 0;
    $errstr = '';
    $conn = @stream_socket_client('unix://' . $socket, $errno, $errstr, $timeout);
    if ($conn === false) {
        error_log("geogate: cannot connect to $socket: $errstr");
        return $failOpen;
    }
    stream_set_timeout($conn, (int)$timeout, (int)(($timeout - floor($timeout)) * 1000000));
    $request = "CHECK $profile $ip\n";
    $line = fwrite($conn, $request) === strlen($request) ? fgets($conn, 2048) : false;
    $timedOut = stream_get_meta_data($conn)['timed_out'];
    fclose($conn);
    if ($line === false) {
        error_log("geogate: no answer from $socket" . ($timedOut ? " within {$timeout}s" : ""));
        return $failOpen;
    }
    if (strncmp($line, 'ALLOW ', 6) === 0) {
        return true;
    }
    if (strncmp($line, 'DENY ', 5) === 0) {
        return false;
    }
    error_log("geogate: " . rtrim($line));
    return $failOpen;
}

/**
 * Sends the "You are not allowed to connect" page with status 403 and ends the
 * request, for a login that geogate_allowed() turned down:
 *
 *     if (!geogate_allowed('web', $_SERVER['REMOTE_ADDR'])) {
 *         geogate_deny();
 *     }
 *
 * $page: the HTML to send (the package ships /usr/share/geogate/denied.html;
 * copy and edit it for your own wording). A page that cannot be read still ends
 * the request with 403 and a one-line text.
 */
function geogate_deny(string $page = '/usr/share/geogate/denied.html'): never
{
    if (!headers_sent()) {
        http_response_code(403);
        header('Content-Type: text/html; charset=utf-8');
        header('Cache-Control: no-store');
    }
    $html = @file_get_contents($page);
    echo $html !== false ? $html : "You are not allowed to connect.\n";
    exit;
}

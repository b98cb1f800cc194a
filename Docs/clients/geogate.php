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
    $line = geogate_request("CHECK $profile $ip", $socket, $timeout);
    if ($line === false) {
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
 * Trusts an address for a time after a successful login, so the user is let in
 * from there even where the country rule would refuse (a traveller, a branch
 * office abroad), until $ttl seconds pass without the next login renewing it:
 *
 *     if (password_verify($password, $hash)) {
 *         geogate_trust('web', $_SERVER['REMOTE_ADDR'], 8 * 3600, "login $user");
 *     }
 *
 * The daemon adds a run-time allow entry (ALLOW <profile> <ip> <ttl> <reason>):
 * at once in its answers and, for a full-server profile, in the kernel sets.
 * Trusted and static networks still come first, and a run-time block wins. The
 * web server's user must be allowed to change entries (entries.group in the
 * config). Returns true when the daemon took it; false (and the reason in the
 * PHP error log) when it refused (not allowed, the profile's cap reached, busy)
 * or could not be asked. $ttl: 1 s to 24 days.
 */
function geogate_trust(string $profile, string $ip, int $ttl = 3600, string $reason = '',
                       string $socket = '/run/geogate/geogate.sock', float $timeout = 2.0): bool
{
    if (filter_var($ip, FILTER_VALIDATE_IP) === false || $ttl < 1 || $ttl > 24 * 86400
        || !preg_match('/^[a-z0-9_-]{1,20}$/', $profile)) {
        error_log("geogate: geogate_trust: bad arguments " . json_encode([$profile, $ip, $ttl]));
        return false;
    }
    // One printable line: the reason loses control characters and is cut.
    $reason = substr(preg_replace('/[^\x20-\x7e]/', '?', $reason), 0, 200);
    $line = geogate_request("ALLOW $profile $ip $ttl $reason", $socket, $timeout);
    if ($line !== false && strncmp($line, 'OK ', 3) === 0) {
        return true;
    }
    if ($line !== false) {
        error_log("geogate: geogate_trust($ip): " . rtrim($line));
    }
    return false;
}

/**
 * One request line to the daemon; its answer line, or false (logged) when it
 * cannot be asked.
 */
function geogate_request(string $request, string $socket, float $timeout)
{
    $errno = 0;
    $errstr = '';
    $conn = @stream_socket_client('unix://' . $socket, $errno, $errstr, $timeout);
    if ($conn === false) {
        error_log("geogate: cannot connect to $socket: $errstr");
        return false;
    }
    stream_set_timeout($conn, (int)$timeout, (int)(($timeout - floor($timeout)) * 1000000));
    $request .= "\n";
    $line = fwrite($conn, $request) === strlen($request) ? fgets($conn, 2048) : false;
    $timedOut = stream_get_meta_data($conn)['timed_out'];
    fclose($conn);
    if ($line === false) {
        error_log("geogate: no answer from $socket" . ($timedOut ? " within {$timeout}s" : ""));
    }
    return $line;
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

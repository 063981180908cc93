using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace OnionDrop.Bench;

/// <summary>
/// A throwaway sshd on 127.0.0.1 for the fetch benchmark (tests use tests/OnionDrop.Testing/LoopbackSshd):
/// one client key forced to `oniondrop pull --stdio`, and one plain key for the scp baseline.
/// </summary>
internal sealed class FetchSshd : IDisposable
{
    private readonly Process _sshd;
    public int Port { get; }
    public string Target => $"{Environment.UserName}@127.0.0.1";
    public string ForcedKey { get; }
    public string PlainKey { get; }
    private readonly string _knownHosts;

    private FetchSshd(Process sshd, int port, string forcedKey, string plainKey, string knownHosts) =>
        (_sshd, Port, ForcedKey, PlainKey, _knownHosts) = (sshd, port, forcedKey, plainKey, knownHosts);

    /// <summary>Options (no port) that use only this server's files; scp takes -P, ssh -p.</summary>
    public string[] Options(string key) =>
    [
        "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
        "-o", $"UserKnownHostsFile={_knownHosts}", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR",
    ];

    public static async Task<FetchSshd> StartAsync(string dir, string forcedCommand)
    {
        Directory.CreateDirectory(dir);
        string host = Path.Combine(dir, "host"), forced = Path.Combine(dir, "forced"), plain = Path.Combine(dir, "plain");
        foreach (var k in new[] { host, forced, plain }) await RunAsync("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k);
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var authorized = Path.Combine(dir, "authorized_keys");
        File.WriteAllText(authorized,
            $"restrict,command=\"{forcedCommand}\" {File.ReadAllText(forced + ".pub").Trim()}\n{File.ReadAllText(plain + ".pub").Trim()}\n");
        var known = Path.Combine(dir, "known_hosts");
        File.WriteAllText(known, $"[127.0.0.1]:{port} {File.ReadAllText(host + ".pub").Trim()}\n");
        var config = Path.Combine(dir, "sshd_config");
        File.WriteAllLines(config,
        [
            $"ListenAddress 127.0.0.1:{port}", $"HostKey {host}", $"AuthorizedKeysFile {authorized}", $"PidFile {dir}/sshd.pid",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            "StrictModes no", "Subsystem sftp internal-sftp",
        ]);
        Directory.CreateDirectory("/run/sshd");
        var psi = new ProcessStartInfo("/usr/sbin/sshd") { UseShellExecute = false };
        foreach (var a in new[] { "-D", "-f", config, "-E", Path.Combine(dir, "sshd.log") }) psi.ArgumentList.Add(a);
        var sshd = Process.Start(psi)!;
        for (var i = 0; ; i++)
        {
            try { using var c = new TcpClient(); await c.ConnectAsync(IPAddress.Loopback, port); break; }
            catch (SocketException) when (i < 200 && !sshd.HasExited) { await Task.Delay(50); }
        }
        return new FetchSshd(sshd, port, forced, plain, known);
    }

    private static async Task RunAsync(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} exited {p.ExitCode}");
    }

    public void Dispose()
    {
        if (!_sshd.HasExited) { _sshd.Kill(); _sshd.WaitForExit(5000); }
        _sshd.Dispose();
    }
}

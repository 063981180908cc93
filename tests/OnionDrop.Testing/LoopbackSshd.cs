using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace OnionDrop.Testing;

/// <summary>
/// A real OpenSSH server (Debian's openssh-server) on 127.0.0.1 at a free port, for pull tests and the fetch
/// benchmark: throwaway host and client keys, one authorized_keys line restricted to
/// <c>forcedCommand</c>, its own config (no PAM, root only with forced commands), nothing from ~/.ssh.
/// The client side is <see cref="ClientArgs"/>: ssh options that use only this directory's files.
/// </summary>
public sealed class LoopbackSshd : IDisposable
{
    private readonly Process _sshd;

    public string Directory { get; }
    public int Port { get; }
    public string Target => $"{Environment.UserName}@127.0.0.1";
    public string LogFile => Path.Combine(Directory, "sshd.log");

    /// <summary>Options for `ssh`/`scp` (before the target) that trust only this server and offer only its client key.</summary>
    public IReadOnlyList<string> ClientArgs { get; }

    /// <summary>Same, without the port flag (ssh wants -p, scp wants -P).</summary>
    public IReadOnlyList<string> ClientOptions { get; }

    private LoopbackSshd(string directory, int port, Process sshd, IReadOnlyList<string> options)
    {
        Directory = directory;
        Port = port;
        _sshd = sshd;
        ClientOptions = options;
        ClientArgs = ["-p", port.ToString(), .. options];
    }

    public static async Task<LoopbackSshd> StartAsync(string directory, string forcedCommand)
    {
        if (forcedCommand.Contains('"')) throw new ArgumentException("the forced command must not contain double quotes");
        System.IO.Directory.CreateDirectory(directory);
        string hostKey = Path.Combine(directory, "host_ed25519"), clientKey = Path.Combine(directory, "client_ed25519");
        await KeygenAsync(hostKey);
        await KeygenAsync(clientKey);
        var port = FreePort.Next();

        var authorizedKeys = Path.Combine(directory, "authorized_keys");
        File.WriteAllText(authorizedKeys, $"restrict,command=\"{forcedCommand}\" {File.ReadAllText(clientKey + ".pub").Trim()}\n");
        var knownHosts = Path.Combine(directory, "known_hosts");
        File.WriteAllText(knownHosts, $"[127.0.0.1]:{port} {File.ReadAllText(hostKey + ".pub").Trim()}\n");
        var config = Path.Combine(directory, "sshd_config");
        File.WriteAllText(config, string.Join('\n',
            $"ListenAddress 127.0.0.1:{port}",
            $"HostKey {hostKey}",
            $"AuthorizedKeysFile {authorizedKeys}",
            $"PidFile {Path.Combine(directory, "sshd.pid")}",
            "PermitRootLogin forced-commands-only",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no", // the test directory lives under /tmp
            "PrintMotd no",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
            "") );

        // sshd refuses to start without its privilege separation directory (normally made by its systemd unit).
        System.IO.Directory.CreateDirectory("/run/sshd");
        var psi = new ProcessStartInfo("/usr/sbin/sshd") { UseShellExecute = false };
        foreach (var a in new[] { "-D", "-f", config, "-E", Path.Combine(directory, "sshd.log") }) psi.ArgumentList.Add(a);
        var sshd = Process.Start(psi) ?? throw new InvalidOperationException("could not start sshd");

        var options = new List<string>
        {
            "-F", "/dev/null", "-i", clientKey,
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
            "-o", $"UserKnownHostsFile={knownHosts}", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-o", "LogLevel=ERROR",
        };
        var server = new LoopbackSshd(directory, port, sshd, options);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        try
        {
            while (true)
            {
                if (sshd.HasExited)
                    throw new InvalidOperationException($"sshd exited {sshd.ExitCode}: {(File.Exists(server.LogFile) ? File.ReadAllText(server.LogFile) : "")}");
                try
                {
                    using var probe = new TcpClient();
                    await probe.ConnectAsync(IPAddress.Loopback, port);
                    return server;
                }
                catch (SocketException) when (DateTime.UtcNow < deadline) { await Task.Delay(50); }
            }
        }
        catch
        {
            server.Dispose(); // an sshd that never listened must not outlive the test
            throw;
        }
    }

    /// <summary>Trusts this server's host key under another name too, such as an onion address that leads to it.</summary>
    public void AddKnownHost(string host) =>
        File.AppendAllText(Path.Combine(Directory, "known_hosts"), $"{host} {File.ReadAllText(Path.Combine(Directory, "host_ed25519.pub")).Trim()}\n");

    private static async Task KeygenAsync(string path)
    {
        var result = await ChildProcess.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "oniondrop-test", "-f", path]);
        if (result.ExitCode != 0) throw new InvalidOperationException("ssh-keygen: " + result);
    }

    /// <summary>Stops the listening sshd (by its pid); sessions still open end with their clients.</summary>
    public void Dispose()
    {
        try { if (!_sshd.HasExited) { _sshd.Kill(); _sshd.WaitForExit(5000); } }
        catch (InvalidOperationException) { }
        _sshd.Dispose();
    }
}

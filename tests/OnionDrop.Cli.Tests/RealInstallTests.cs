using OnionDrop.Sealing;
using OnionDrop.Testing;

namespace OnionDrop.Cli.Tests;

/// <summary>
/// scripts/install.sh as an operator runs it (`sudo scripts/install.sh`, no --root, no stdin), on this machine's own
/// /etc, /opt, /var/lib, /var/cache and /usr/local, but inside a private mount (and PID) namespace where each of them
/// is an overlay over a scratch folder: users, config and the sshd drop-in exist only there and vanish with it. Then
/// a journalist fetches through a real sshd (on a loopback port, with the system's sshd_config and the installed
/// drop-in) and the operator uninstalls.
/// </summary>
[Category("EndToEnd")]
public class RealInstallTests
{
    private const string Script = """
        set -euo pipefail
        install=$1 work=$2 key=$3 port=$4 packages=$5   # packages: the tests' NuGet folder, so the build downloads nothing
        mount --make-rprivate /
        for d in /etc /opt /var/lib /var/cache /usr/local; do
          mkdir -p "$work/overlay$d/upper" "$work/overlay$d/work"
          mount -t overlay overlay -o "lowerdir=$d,upperdir=$work/overlay$d/upper,workdir=$work/overlay$d/work" "$d"
        done
        asroot() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@" </dev/null; } # what sudo leaves
        echo "== first"; asroot bash "$install" --recipient "$key" --nuget-packages "$packages"
        cp /etc/oniondrop/oniondrop.json "$work/oniondrop.json"   # the second install finds a config the daemon would refuse
        sed -i "s|\"$key\"|\"$key\", \"$key\"|" /etc/oniondrop/oniondrop.json
        echo "== second"; asroot bash "$install" --nuget-packages "$packages"
        cp "$work/oniondrop.json" /etc/oniondrop/oniondrop.json
        echo "== builder uid $(id -u oniondrop-build)"
        ssh-keygen -q -t ed25519 -N '' -f "$work/alice"
        echo "restrict,command=\"/usr/local/bin/oniondrop pull --stdio --config /etc/oniondrop/oniondrop.json --as alice\" $(cat "$work/alice.pub")" >> /etc/oniondrop/authorized_keys
        /usr/sbin/sshd -D -f /etc/ssh/sshd_config -o "ListenAddress=127.0.0.1:$port" -o PidFile=none -E "$work/sshd.log" &
        for i in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
        echo "== fetch"
        ssh=(-F /dev/null -i "$work/alice" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
        /usr/local/bin/oniondrop fetch oniondrop@127.0.0.1 --port "$port" -o "$work/inbox" "${ssh[@]/#/--ssh-arg=}" 2>&1 </dev/null && echo "fetch: ok"
        echo "== uninstall"; asroot bash "$install" --uninstall
        echo "== uninstall again"; asroot bash "$install" --uninstall
        getent passwd oniondrop-build >/dev/null || echo "== no user oniondrop-build"
        """;

    [Test]
    public async Task AsAnOperatorRunsIt()
    {
        using var tmp = new TempDirectory();
        var install = await InstallScriptTests.CopyOfTheRepository(tmp);
        var builders = InstallScriptTests.PlantBuildHook(tmp, install);
        var key = JournalistKey.Generate().PublicKey.ToString();
        var work = tmp.Combine("work");
        Directory.CreateDirectory(work);
        var script = tmp.Combine("real-install.sh");
        await File.WriteAllTextAsync(script, Script);

        var r = await ChildProcess.RunAsync("unshare", ["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc",
            "bash", script, install, work, key, FreePort.Next().ToString(), NuGetPackagesCopy.Path], TimeSpan.FromMinutes(15));
        TestContext.Out.WriteLine(r.ToString());
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        var parts = ("\n" + r.Stdout).Split("\n== ");
        string Part(string name) => parts.Single(p => p.StartsWith(name + "\n", StringComparison.Ordinal));

        Assert.Multiple(() =>
        {
            Assert.That(parts.Where(p => !p.StartsWith("second\n", StringComparison.Ordinal)), Has.None.Contain("WARNING"), "nothing to warn about on a machine like this one");
            Assert.That(Part("first"), Does.Contain("config: accepted by the installed program"));
            Assert.That(Part("second").Split('\n').Where(l => l.Contains("WARNING")), Is.EqualTo(new[]
            {
                "install.sh: WARNING: the installed program refuses /etc/oniondrop/oniondrop.json, and the daemon would not start with it: " +
                $"oniondrop serve: bad configuration: Recipients[1] \"{key[..20]}...\" is the same key as Recipients[0]: list each journalist's key once (was another key meant?)",
            }), "the key listed twice, said before a restart; nothing else to warn about");
            Assert.That(Part("first"), Does.Contain("user oniondrop: created").And.Contain("user oniondrop-build: created")
                .And.Contain("publishing the daemon (dotnet publish -c Release) as oniondrop-build").And.Contain("/etc/ssh/sshd_config.d/oniondrop.conf: installed"));
            Assert.That(Part("second"), Does.Contain("user oniondrop-build: exists").And.Contain("0 files installed").And.Contain("oniondrop.json: exists, not changed"));
            Assert.That(Part("fetch"), Does.Contain("0 new submission(s)").And.Contain("fetch: ok"));
            Assert.That(Part("uninstall"), Does.Contain("/opt/oniondrop: removed").And.Contain("user oniondrop-build: removed").And.Contain("kept: /var/lib/oniondrop"));
            Assert.That(parts, Has.Some.StartsWith("no user oniondrop-build"));
        });
        var builder = parts.Single(p => p.StartsWith("builder uid ", StringComparison.Ordinal))["builder uid ".Length..].Trim();
        Assert.That(File.ReadAllLines(builders).Where(l => l.Length > 0).Distinct(), Is.EqualTo(new[] { builder }), "every project was built by oniondrop-build");
    }
}

using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Pull.Tests;

/// <summary>
/// pull.sock believes the relay's "AS NAME" only from the daemon's own user (docs/pull-protocol.md, "Who may
/// connect to pull.sock"): the kernel's peer credentials decide, not the socket's file mode.
/// </summary>
public class PullSocketAccessTests
{
    private const int Nobody = 65534;
    private TempDirectory _temp = null!;
    private JournalistKey _key = null!;
    private string DataDir => _temp.Combine("data");

    [SetUp] public void SetUp() => (_temp, _key) = (new TempDirectory(), JournalistKey.Generate());
    [TearDown] public void TearDown() { _key.Dispose(); _temp.Dispose(); }

    [Test]
    public async Task Peer_credentials_are_the_connecting_process_as_the_kernel_knows_it()
    {
        var path = _temp.Combine("probe.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        using var client = await PullRelay.ConnectAsync(path);
        using var accepted = await listener.AcceptAsync();

        var peer = PeerCredentials.Of(accepted);

        Assert.That(peer.Pid, Is.EqualTo(Environment.ProcessId));
        Assert.That(peer.Uid, Is.EqualTo(PeerCredentials.OwnUid));
        Assert.That(PullSocketListener.MayRelay(peer.Uid), Is.True);
        Assert.That(PullSocketListener.MayRelay(PeerCredentials.OverflowUid), Is.False, "nobody, the face of every unmapped user, never speaks for a journalist");
    }

    [Test]
    public async Task A_link_at_pull_sock_is_refused_and_its_target_never_sees_a_connection()
    {
        using var target = Listen(_temp.Combine("elsewhere.sock"));
        var link = _temp.Combine(PullSocketListener.FileName);
        File.CreateSymbolicLink(link, target.Path);

        var refused = await Assert.ThrowsAsync<IOException>(() => PullRelay.ConnectAsync(link));

        Assert.That(refused!.Message, Is.EqualTo($"{link} is a symbolic link: refused"));
        Assert.That(target.Socket.Poll(200_000, SelectMode.SelectRead), Is.False, "no connection waits at the link's target");
    }

    [Test]
    public async Task The_connection_goes_to_the_entry_checked_not_to_what_is_put_in_its_place_later()
    {
        // Root's `compact` connects to pull.sock in a directory the daemon's user writes. Between a check and a
        // connect by name, that user could rename a link (or another socket) into its place: the connection goes
        // through a handle on the entry that was checked.
        var path = _temp.Combine(PullSocketListener.FileName);
        using var checkedOne = Listen(path);
        using var entry = Posix.OpenPathNoFollow(path);
        using var planted = Listen(_temp.Combine("planted.sock"));
        File.Move(planted.Path, path, overwrite: true);

        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await client.ConnectAsync(new UnixDomainSocketEndPoint(Posix.PathOf(entry)));

        Assert.That(checkedOne.Socket.Poll(2_000_000, SelectMode.SelectRead), Is.True, "the socket checked got the connection");
        Assert.That(planted.Socket.Poll(200_000, SelectMode.SelectRead), Is.False, "the one renamed into its place did not");

        // And a link taken by the same handle reaches nothing at all.
        var link = _temp.Combine("link.sock");
        File.CreateSymbolicLink(link, checkedOne.Path);
        using var linkEntry = Posix.OpenPathNoFollow(link);
        using var viaLink = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await Assert.ThrowsAsync<SocketException>(async () => await viaLink.ConnectAsync(new UnixDomainSocketEndPoint(Posix.PathOf(linkEntry))));
    }

    private sealed record Listening(Socket Socket, string Path) : IDisposable
    {
        public void Dispose() => Socket.Dispose();
    }

    private static Listening Listen(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        socket.Listen(4);
        return new Listening(socket, path);
    }

    [Test]
    public async Task A_relay_running_as_another_user_is_refused_with_a_clear_error_and_gets_nothing()
    {
        Assume.That(PeerCredentials.OwnUid, Is.Zero, "needs root, to run the relay as another uid (setpriv)");
        using var store = SealedBlobStore.Open(DataDir);
        var ids = await Submissions.CreateAsync(store, _key.PublicKey, 3, n => 1000 + n);
        var listener = new PullSocketListener(store, DataDir, NullLogger<PullSocketListener>.Instance);
        await listener.StartAsync(CancellationToken.None);
        try
        {
            await listener.Listening.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.That(File.GetUnixFileMode(listener.SocketPath), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));

            // The threat is someone who can reach pull.sock without being the daemon's user. Open the way for
            // uid 65534 as a careless operator might: a path it can walk, the data directory its own (so the
            // CLI's store check passes), and the lock and the socket writable by anyone. Only SO_PEERCRED is left.
            File.SetUnixFileMode(_temp.Path, (UnixFileMode)0b111_001_001);
            var chown = await ChildProcess.RunAsync("chown", [$"{Nobody}:{Nobody}", DataDir]);
            Assert.That(chown.ExitCode, Is.Zero, chown.ToString());
            File.SetUnixFileMode(Path.Combine(DataDir, DataDirectoryLock.FileName), (UnixFileMode)0b110_110_110);
            File.SetUnixFileMode(listener.SocketPath, (UnixFileMode)0b110_110_110);

            var received = _temp.Combine("received");
            var relayAsNobody = $"setpriv --reuid={Nobody} --regid={Nobody} --clear-groups dotnet {Oniondrop.Dll} pull --stdio --data-dir {DataDir} --as alice";
            var refused = await Oniondrop.RunAsync(["fetch", "-o", received, "--via", relayAsNobody]);

            Assert.That(refused.ExitCode, Is.EqualTo(3), refused.ToString());
            Assert.That(refused.Stderr, Does.Contain($"oniondrop fetch: the server refused: refused pull.sock serves only the daemon's user (uid 0); this connection is uid {Nobody}"), refused.ToString());
            Assert.That(refused.Stderr, Does.Contain("oniondrop pull: pull.sock refused this relay:"), "the server side says so on its own stderr too");
            Assert.That(Directory.Exists(received) ? Directory.GetFiles(received) : [], Is.Empty);
            Assert.That(store.ListWaiting("alice").Select(r => r.Id), Is.EquivalentTo(ids.Keys), "nothing acknowledged in alice's name");

            // The same relay as the daemon's own user, through the same wide-open files, is served: the uid decided.
            var served = await Oniondrop.RunAsync(["fetch", "-o", received, "--via", $"dotnet {Oniondrop.Dll} pull --stdio --data-dir {DataDir} --as alice"]);
            Assert.That(served.ExitCode, Is.Zero, served.ToString());
            Assert.That(Directory.GetFiles(received, "*.sealed"), Has.Length.EqualTo(3));
        }
        finally
        {
            await listener.StopAsync(CancellationToken.None);
        }
    }
}

using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace OnionDrop.Pull;

/// <summary>
/// Who is at the other end of a connected Unix socket, as the kernel recorded it when the peer connected
/// (SO_PEERCRED): the peer cannot choose or forge it. Under systemd's PrivateUsers= the ids are those seen
/// inside the service's user namespace, where any user other than root and the service's own shows as
/// <see cref="OverflowUid"/>.
/// </summary>
public readonly record struct PeerCredentials(int Pid, uint Uid, uint Gid)
{
    private const int SolSocket = 1, SoPeerCred = 17; // <sys/socket.h> on Linux

    /// <summary>"nobody": what an unmapped user looks like from inside a user namespace.</summary>
    public const uint OverflowUid = 65534;

    public static PeerCredentials Of(Socket socket)
    {
        Span<byte> ucred = stackalloc byte[12]; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        if (socket.GetRawSocketOption(SolSocket, SoPeerCred, ucred) != ucred.Length)
            throw new SocketException((int)SocketError.ProtocolOption);
        return new(MemoryMarshal.Read<int>(ucred), MemoryMarshal.Read<uint>(ucred[4..]), MemoryMarshal.Read<uint>(ucred[8..]));
    }

    /// <summary>This process's effective uid.</summary>
    public static uint OwnUid => geteuid();

    [DllImport("libc")] private static extern uint geteuid();
}

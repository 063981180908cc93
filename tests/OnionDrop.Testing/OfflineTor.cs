namespace OnionDrop.Testing;

/// <summary>
/// Keeps a test's tor off every network: its only directory authority is one nobody can reach on loopback, so it
/// tries to connect (the same calls as to a relay), sends nothing off the machine, and waits for the network on
/// every machine. (DisableNetwork 1 would also keep tor from opening its control socket.)
/// </summary>
public static class OfflineTor
{
    public const string DirAuthority =
        "DirAuthority unreachable orport=1 no-v2 v3ident=0000000000000000000000000000000000000000 127.0.0.1:1 0000000000000000000000000000000000000000";
}

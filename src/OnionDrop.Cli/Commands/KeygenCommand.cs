using System.CommandLine;

namespace OnionDrop.Cli.Commands;

public static class KeygenCommand
{
    public static Command Create()
    {
        var command = new Command("keygen", "(not implemented yet)");
        command.SetAction(_ => { Console.Error.WriteLine("oniondrop keygen: not implemented yet"); return 70; });
        return command;
    }
}
